package api

import (
	"testing"

	"github.com/tandem-run/tandem/internal/config"
)

// TestReservedPathsAsConfig checks that the server refuses a route on
// exactly the paths config.ReservedPath names (the validator's list).
func TestReservedPathsAsConfig(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/v1", "/v1/messages", "/ui", "/ui/x", "/metrics/x", "/healthz", "/readyz", "/openapi.json",
		"/v1x", "/uix", "/metrics2", "/openapi.yaml", "/healthzz"} {
		cfg := baseConfig()
		cfg.Routes[0].Path = p
		_, err := New(Options{Config: cfg, Logger: quietLogger()})
		_, reserved := config.ReservedPath(p)
		if (err != nil) != reserved {
			t.Errorf("route path %s: New error %v, want refused %v", p, err, reserved)
		}
	}
}
