package api

import (
	"net/http"

	"github.com/tandem-run/tandem/internal/source"
)

// Sources reports the broker sources; *source.Manager is one.
type Sources interface {
	Status() []source.Status
}

// sourceList is the answer of GET /v1/sources.
type sourceList struct {
	Sources []source.Status `json:"sources"`
}

// listSources answers GET /v1/sources: each source's state, lag and
// in-flight count, in config order.
func (s *server) listSources(w http.ResponseWriter, r *http.Request) {
	v := sourceList{Sources: []source.Status{}}
	if s.sources != nil {
		v.Sources = append(v.Sources, s.sources.Status()...)
	}
	writeJSON(w, http.StatusOK, v)
}
