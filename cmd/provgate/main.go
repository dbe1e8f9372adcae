// Command provgate is the site provisioning gateway and its installer CLI.
package main

import "github.com/provgate/provgate/internal/cli"

func main() { cli.Main("provgate", run) }
