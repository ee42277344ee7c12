package client

import (
	"context"
	"net/http"
	"time"
)

// ConfigInfo is the config in force (GET /v1/config).
type ConfigInfo struct {
	// Version is 1 for the file the server started with, one more per
	// successful reload.
	Version int64 `json:"version"`
	// Hash is the sha256 of the file's bytes, hex.
	Hash string `json:"hash"`
	// LoadedAt is when this version was loaded.
	LoadedAt time.Time `json:"loaded_at"`
}

// ConfigChanges lists names by what a reload did to them.
type ConfigChanges struct {
	Added   []string `json:"added"`
	Changed []string `json:"changed"`
	Removed []string `json:"removed"`
}

// ReloadResult is the answer of POST /v1/config/reload.
type ReloadResult struct {
	ConfigInfo
	// Unchanged is true when the file was the one in force.
	Unchanged bool           `json:"unchanged"`
	Targets   *ConfigChanges `json:"targets,omitempty"`
	Routes    *ConfigChanges `json:"routes,omitempty"`
}

// Config returns the config in force on the server.
func (c *Client) Config(ctx context.Context) (*ConfigInfo, error) {
	var out ConfigInfo
	if err := c.do(ctx, http.MethodGet, "/v1/config", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReloadConfig makes the server load its config file again. A file that
// is not valid, or that changes what only a restart applies, is a
// *Problem matching ErrValidation whose Errors list every problem; the
// server's config is then unchanged.
func (c *Client) ReloadConfig(ctx context.Context) (*ReloadResult, error) {
	var out ReloadResult
	if err := c.do(ctx, http.MethodPost, "/v1/config/reload", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
