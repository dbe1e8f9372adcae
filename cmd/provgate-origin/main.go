// Command provgate-origin is the reference provisioning cloud: it serves a
// data folder to provgate gateways over mutual TLS, and runs its dev PKI.
package main

import "github.com/provgate/provgate/internal/cli"

func main() { cli.Main("provgate-origin", run) }
