package config

import (
	"strings"
	"testing"
)

// reservedCases are route paths and whether they are tandem's own. The
// HTTP server's test (internal/api) runs the same paths through New.
var reservedCases = []struct {
	path     string
	reserved string // "" when the path is free
}{
	{"/v1", "/v1"}, {"/v1/messages", "/v1"}, {"/v1/", "/v1"}, {"/ui", "/ui"}, {"/ui/x", "/ui"},
	{"/metrics", "/metrics"}, {"/metrics/x", "/metrics"}, {"/healthz", "/healthz"}, {"/readyz", "/readyz"},
	{"/openapi.json", "/openapi.json"},
	{"/v1x", ""}, {"/uix", ""}, {"/metrics2", ""}, {"/openapi.yaml", ""}, {"/healthzz", ""}, {"/orders", ""}, {"/", ""},
}

func TestReservedPath(t *testing.T) {
	t.Parallel()
	for _, tt := range reservedCases {
		got, ok := ReservedPath(tt.path)
		if got != tt.reserved || ok != (tt.reserved != "") {
			t.Errorf("ReservedPath(%q) = %q, %v; want %q", tt.path, got, ok, tt.reserved)
		}
	}
}

// TestValidatorUsesReservedPath checks that the config validator refuses
// exactly the paths ReservedPath names, so it and the server agree.
func TestValidatorUsesReservedPath(t *testing.T) {
	t.Parallel()
	for _, tt := range reservedCases {
		src := "targets: {pay: {url: \"http://h\"}}\nroutes: [{name: r, path: \"" + tt.path + "\", steps: [{name: s, target: pay}]}]\n"
		_, err := parse([]byte(src), "t.yaml", noEnv)
		refused := err != nil && strings.Contains(err.Error(), "is reserved")
		if refused != (tt.reserved != "") {
			t.Errorf("path %q: refused %v (err %v), want %v", tt.path, refused, err, tt.reserved != "")
		}
	}
}
