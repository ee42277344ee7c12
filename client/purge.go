package client

import (
	"context"
	"net/http"

	"github.com/tandem-run/tandem/api"
)

// PurgeRequest selects dead letters to purge: by IDs, by Route/Target, or
// All. Limit caps a filter (default 1000 on the server); it cannot be
// combined with IDs.
type PurgeRequest struct {
	IDs    []string `json:"ids,omitempty"`
	Route  string   `json:"route,omitempty"`
	Target string   `json:"target,omitempty"`
	Limit  int      `json:"limit,omitempty"`
	All    bool     `json:"all,omitempty"`
}

// PurgeResult is the answer of POST /v1/dead-letters/purge.
type PurgeResult struct {
	Purged int      `json:"purged"`
	IDs    []string `json:"ids"`
}

// PurgeDeadLetters takes dead letters out of the dead-letter queue for
// good: they become cancelled and can no longer be replayed.
func (c *Client) PurgeDeadLetters(ctx context.Context, r PurgeRequest) (*PurgeResult, error) {
	var out PurgeResult
	if err := c.do(ctx, http.MethodPost, "/v1/dead-letters/purge", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplayDetailed is Replay with the whole answer: the replayed ids and the
// deliveries left alone, with the reason.
func (c *Client) ReplayDetailed(ctx context.Context, r ReplayRequest) (*api.ReplayResult, error) {
	var out api.ReplayResult
	if err := c.do(ctx, http.MethodPost, "/v1/dead-letters/replay", r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
