package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// health asks a running server's /healthz (or /readyz) and exits 0 when it
// answers 200: the container image's HEALTHCHECK, which has no curl.
func (m *Main) health(ctx context.Context, args []string) error {
	fs := m.newFlags("health", "health [--server URL] [--ready]")
	server, _ := m.serverFlags(fs)
	ready := fs.Bool("ready", false, "ask /readyz (the store answers, not shutting down) instead of /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*server, "/")+path, nil)
	if err != nil {
		return usagef("health: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return remoteError("health", *server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	fmt.Fprintln(m.Stdout, strings.TrimSpace(string(b)))
	return nil
}
