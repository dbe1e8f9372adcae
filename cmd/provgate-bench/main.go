// Command provgate-bench measures provgate against a baseline in the same
// run and prints ratios: `make bench` runs it.
package main

import "github.com/provgate/provgate/internal/cli"

func main() { cli.Main("provgate-bench", run) }
