package api

import (
	"net/http"
	"strings"

	"github.com/tandem-run/tandem/internal/source"
)

// Sources reports the broker sources; *source.Manager is one.
type Sources interface {
	Status() []source.Status
}

// sourcesView is the answer of GET /v1/sources.
type sourcesView struct {
	Sources []source.Status `json:"sources"`
}

// listSources answers GET /v1/sources: each source's state, lag and
// in-flight count, in config order.
func (s *server) listSources(w http.ResponseWriter, r *http.Request) {
	v := sourcesView{Sources: []source.Status{}}
	if s.sources != nil {
		v.Sources = append(v.Sources, s.sources.Status()...)
	}
	writeJSON(w, http.StatusOK, v)
}

// sourcesReady returns the 503 problem of /readyz while a broker source
// is not consuming (connecting, reconnecting or stopped), naming each
// such source and its state; nil when every source consumes. The broker
// error itself may name hosts: it is in GET /v1/sources (admin) and the
// log, not on this open endpoint.
func (s *server) sourcesReady() *Problem {
	if s.sources == nil {
		return nil
	}
	var down []string
	for _, st := range s.sources.Status() {
		if st.State != source.StateConsuming {
			down = append(down, "source "+st.Name+" is "+st.State)
		}
	}
	if len(down) == 0 {
		return nil
	}
	return unavailable("not ready: " + strings.Join(down, "; "))
}
