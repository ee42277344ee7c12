package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
)

// ConfigReloader loads the config file again and reports the config in
// force; the serve command implements it (cmd/tandem/reload.go).
type ConfigReloader interface {
	// ConfigInfo describes the config in force.
	ConfigInfo() ConfigInfo
	// ReloadConfig reads, validates and swaps in the config file. A file
	// that is not valid comes back as config.Errors, and one that changes
	// what needs a restart as *RestartNeededError; nothing changed then.
	ReloadConfig(ctx context.Context) (*ReloadInfo, error)
}

// ConfigInfo is the answer of GET /v1/config.
type ConfigInfo struct {
	// Version is 1 for the config the process started with, one more per
	// successful reload.
	Version int64 `json:"version"`
	// Hash is the sha256 of the file's bytes, hex.
	Hash string `json:"hash"`
	// LoadedAt is when this version was loaded.
	LoadedAt time.Time `json:"loaded_at"`
}

// ReloadInfo is the answer of POST /v1/config/reload: the config now in
// force and what the reload changed. Unchanged is true when the file's
// hash was the one in force (nothing was swapped).
type ReloadInfo struct {
	ConfigInfo
	Unchanged bool     `json:"unchanged"`
	Targets   *Changes `json:"targets,omitempty"`
	Routes    *Changes `json:"routes,omitempty"`
}

// Changes lists names by what a reload did to them.
type Changes struct {
	Added   []string `json:"added"`
	Changed []string `json:"changed"`
	Removed []string `json:"removed"`
}

// RestartNeededError is a new config that changes keys a reload cannot
// apply (listen address, store, sources, ...): it is refused whole.
type RestartNeededError struct {
	Keys []string // top-level key paths, e.g. "server", "store"
}

func (e *RestartNeededError) Error() string {
	return "the new config changes what only a restart applies: " + joinComma(e.Keys)
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// registerConfig registers GET /v1/config and POST /v1/config/reload.
func (s *server) registerConfig(api huma.API) {
	huma.Register(api, secured(huma.Operation{
		OperationID: "get-config", Method: http.MethodGet, Path: "/v1/config",
		Summary:     "The config in force",
		Description: "Its version (1 at start, one more per successful reload), the sha256 of the file's bytes, and when it was loaded.",
		Tags:        []string{"config"}, Errors: []int{401, 403, 503},
	}), s.getConfig)
	huma.Register(api, secured(huma.Operation{
		OperationID: "reload-config", Method: http.MethodPost, Path: "/v1/config/reload",
		Summary: "Reload the config file",
		Description: "Reads the config file again, validates it as `tandem validate` does, and swaps it in atomically. " +
			"A file that is not valid, or that changes keys only a restart applies (server, store, log, sources), " +
			"changes nothing and is answered 422 with every error.",
		Tags: []string{"config"}, Errors: []int{401, 403, 422, 503},
	}), s.reloadConfig)
}

func (s *server) getConfig(_ context.Context, _ *struct{}) (*body[ConfigInfo], error) {
	if s.reloader == nil {
		return nil, unavailable("this server does not load its config from a file")
	}
	return &body[ConfigInfo]{Body: s.reloader.ConfigInfo()}, nil
}

// reloadConfig answers POST /v1/config/reload: 200 with the config in
// force, or 422 listing every problem of the file (nothing changed).
func (s *server) reloadConfig(ctx context.Context, _ *struct{}) (*body[*ReloadInfo], error) {
	if s.reloader == nil {
		return nil, unavailable("this server does not load its config from a file")
	}
	info, err := s.reloader.ReloadConfig(ctx)
	if err == nil {
		return &body[*ReloadInfo]{Body: info}, nil
	}
	var errs config.Errors
	var rn *RestartNeededError
	switch {
	case errors.As(err, &errs):
		p := newProblem(tapi.ErrValidation, "the config file is not valid; nothing changed")
		for _, e := range errs {
			p.withField(e.Error(), e.Path)
		}
		return nil, p
	case errors.As(err, &rn):
		p := newProblem(tapi.ErrValidation, rn.Error()+"; nothing changed")
		for _, k := range rn.Keys {
			p.withField("changing "+k+" needs a restart", k)
		}
		return nil, p
	default:
		return nil, newProblem(tapi.ErrValidation, "reload failed; nothing changed: "+err.Error())
	}
}
