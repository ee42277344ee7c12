package api

import (
	"context"
	"errors"
	"net/http"
	"time"

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

// getConfig answers GET /v1/config.
func (s *server) getConfig(w http.ResponseWriter, r *http.Request) {
	if s.reloader == nil {
		writeProblem(w, r, unavailable("this server does not load its config from a file"))
		return
	}
	writeJSON(w, http.StatusOK, s.reloader.ConfigInfo())
}

// reloadConfig answers POST /v1/config/reload: 200 with the config in
// force, or 422 listing every problem of the file (nothing changed).
func (s *server) reloadConfig(w http.ResponseWriter, r *http.Request) {
	if s.reloader == nil {
		writeProblem(w, r, unavailable("this server does not load its config from a file"))
		return
	}
	info, err := s.reloader.ReloadConfig(r.Context())
	if err == nil {
		writeJSON(w, http.StatusOK, info)
		return
	}
	var errs config.Errors
	var rn *RestartNeededError
	switch {
	case errors.As(err, &errs):
		p := newProblem(tapi.ErrValidation, "the config file is not valid; nothing changed")
		for _, e := range errs {
			p.withField(e.Error(), e.Path)
		}
		writeProblem(w, r, p)
	case errors.As(err, &rn):
		p := newProblem(tapi.ErrValidation, rn.Error()+"; nothing changed")
		for _, k := range rn.Keys {
			p.withField("changing "+k+" needs a restart", k)
		}
		writeProblem(w, r, p)
	default:
		p := newProblem(tapi.ErrValidation, "reload failed; nothing changed: "+err.Error())
		writeProblem(w, r, p)
	}
}
