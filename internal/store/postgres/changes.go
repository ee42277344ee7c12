package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/tandem-run/tandem/internal/store"
)

// maxChangePayload keeps each change notice well under PostgreSQL's
// 8000-byte NOTIFY payload limit.
const maxChangePayload = 7000

// changePayload is the JSON of one notice on the changes channel. The
// field names are short because a notice is capped at 8000 bytes; a
// reader ignores fields it does not know, so new ones can be added.
type changePayload struct {
	Origin string   `json:"o"`
	IDs    []string `json:"m"`
}

// changesChannel is the channel of change notices: its own, beside the
// wake-up channel, so replicas that do not listen for changes (older
// versions) never see these payloads.
func (s *Store) changesChannel() string {
	return strings.Replace(s.channel, "tandem_ready", "tandem_changes", 1)
}

// ChangeNotify queues a notice that origin changed the messages; it goes
// out with the next wake-ups, after the data has committed (notify.go).
func (s *Store) ChangeNotify(origin string, messageIDs []string) {
	if len(messageIDs) == 0 || s.checkOpen() != nil {
		return
	}
	n := s.notes
	n.mu.Lock()
	set := n.changes[origin]
	if set == nil {
		set = map[string]bool{}
		n.changes[origin] = set
	}
	for _, id := range messageIDs {
		set[id] = true
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// ChangeListen returns the change notices of every replica on the
// database (this one's too), from its own LISTEN connection, which
// reconnects with backoff when lost; a Change with no ids comes after each
// (re)connect. Notices that cannot be decoded are dropped. Unlike Listen,
// notices are not merged: a reader that falls 256 notices behind makes
// the listener wait, so read promptly.
func (s *Store) ChangeListen(ctx context.Context) <-chan store.Change {
	out := make(chan store.Change, 256)
	in, ctx := s.subscribe(ctx, s.changesChannel())
	if in == nil {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		for p := range in {
			c, ok := decodeChange(p)
			if !ok {
				continue
			}
			select {
			case out <- c:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// decodeChange reads one notice; "" (a reconnect) is a Change with no ids.
func decodeChange(p string) (store.Change, bool) {
	if p == "" {
		return store.Change{}, true
	}
	var c changePayload
	if err := json.Unmarshal([]byte(p), &c); err != nil || len(c.IDs) == 0 {
		return store.Change{}, false
	}
	return store.Change{Origin: c.Origin, MessageIDs: c.IDs}, true
}

// changePayloads turns the queued ids (by origin) into notices of at most
// maxChangePayload bytes each.
func changePayloads(byOrigin map[string]map[string]bool) []string {
	var out []string
	for origin, set := range byOrigin {
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		size := len(origin) + 16
		var chunk []string
		emit := func() {
			if len(chunk) == 0 {
				return
			}
			b, err := json.Marshal(changePayload{Origin: origin, IDs: chunk})
			if err == nil {
				out = append(out, string(b))
			}
			chunk, size = nil, len(origin)+16
		}
		for _, id := range ids {
			if len(id)+3 > maxChangePayload-len(origin)-16 {
				continue // no message id is this long; never send one that cannot fit
			}
			if size+len(id)+3 > maxChangePayload {
				emit()
			}
			chunk = append(chunk, id)
			size += len(id) + 3
		}
		emit()
	}
	return out
}
