package sqlite

import (
	"bytes"
	"sync"

	"github.com/tandem-run/tandem/internal/record"
)

// recentSize is how many of the latest inserted messages recent keeps: a
// few seconds of traffic at the rates one process takes.
const recentSize = 8192

// recent keeps the messages this process inserted last, so a claim can
// attach them (record.Delivery.Message: id, route, body, headers, query,
// created_at, none of which ever changes) without a read. It is a ring:
// the oldest falls out when a new one comes in. A miss (an older message,
// one inserted before a restart) is read from the store.
type recent struct {
	mu   sync.Mutex
	byID map[string]*record.Message
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{byID: make(map[string]*record.Message, n), ring: make([]string, n)}
}

// put remembers m, committed. The body is copied: the caller's buffer
// may be reused once the insert has answered.
func (r *recent) put(m record.Message) {
	m.Body = bytes.Clone(m.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.ring[r.next]; old != "" {
		delete(r.byID, old)
	}
	r.ring[r.next] = m.ID
	r.byID[m.ID] = &m
	r.next = (r.next + 1) % len(r.ring)
}

// attach fills the Message of each delivery whose message it holds, each
// with its own copy, and returns the ids it does not hold.
func (r *recent) attach(ds []record.Delivery) (missing []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ds {
		if m, ok := r.byID[ds[i].MessageID]; ok {
			c := *m
			ds[i].Message = &c
		} else {
			missing = append(missing, ds[i].MessageID)
		}
	}
	return missing
}
