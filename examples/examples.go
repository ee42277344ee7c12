// Package examples embeds the example configs, so `tandem demo` runs from
// any directory.
package examples

import "embed"

// FS holds every example config (*.yaml).
//
//go:embed *.yaml
var FS embed.FS
