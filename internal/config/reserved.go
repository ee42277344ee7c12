package config

import "strings"

// reservedPaths are tandem's own endpoints. A route's path may be none of
// them, nor lie below one: the config validator and the HTTP server both
// ask ReservedPath, so they cannot disagree.
var reservedPaths = []string{"/v1", "/ui", "/metrics", "/healthz", "/readyz", "/openapi.json"}

// ReservedPath reports whether a route path is one of tandem's own
// endpoints or lies below one, and which. "/ui/x" is reserved (by "/ui");
// "/uix" and "/v1x" are not.
func ReservedPath(p string) (string, bool) {
	for _, r := range reservedPaths {
		if p == r || strings.HasPrefix(p, r+"/") {
			return r, true
		}
	}
	return "", false
}
