package engine

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

// Idempotency keys follow the IETF httpapi idempotency-key draft: a repeat
// with the same key and body gets the first answer's status code, marked
// Repeat; the same key with another body is store.ErrIdempotencyConflict;
// a repeat while the first request with that key still waits for its
// answer is ErrIdempotencyInFlight.

// memoMax bounds the keys a process remembers for durable: false routes.
const memoMax = 10_000

// bodyHash is the hash an idempotency key's body is compared by.
func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// repeatDurable answers a repeat of a waiting route's message. The first
// request waits at most the route's deadline from the message's creation,
// on whichever replica took it, so the message itself says whether it may
// still be waiting: its respond point not reached and the deadline not
// passed. Otherwise the answer is the one the first request got: the
// respond point's, or, when that was not reached within the deadline, 202
// with where the message is now.
func (e *Engine) repeatDurable(ctx context.Context, rp *routePlan, id string) (*Answer, error) {
	md, err := e.store.MessageGet(context.WithoutCancel(ctx), id)
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	ans, reached := e.answerFor(rp, md, false)
	if !reached {
		if e.opts.Now().Before(md.Message.CreatedAt.Add(routeDeadline(rp))) {
			return nil, ErrIdempotencyInFlight
		}
		ans, _ = e.answerFor(rp, md, true)
	}
	ans.Repeat = true
	return ans, nil
}

// routeDeadline is how long a waiting caller of rp waits.
func routeDeadline(rp *routePlan) time.Duration {
	if d := rp.cfg.Deadline.D(); d > 0 {
		return d
	}
	return 30 * time.Second
}

// fanOutOnce runs a durable: false route once per idempotency key (per
// process, for the route's idempotency_ttl): a repeat gets the first
// answer again.
func (e *Engine) fanOutOnce(ctx context.Context, rp *routePlan, in *Inbound) (*Answer, error) {
	if in.IdempotencyKey == "" {
		return e.fanOut(ctx, rp, in)
	}
	ttl := rp.cfg.IdempotencyTTL.D()
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	en, ans, err := e.memo.begin(rp.cfg.Name+"\x00"+in.IdempotencyKey, bodyHash(in.Body), e.opts.Now(), ttl)
	if err != nil || ans != nil {
		return ans, err
	}
	ans, err = e.fanOut(ctx, rp, in)
	if err != nil {
		e.memo.abort(en)
		return nil, err
	}
	e.memo.finish(en, ans)
	return ans, nil
}

// memo remembers, for durable: false routes, each idempotency key's body
// hash and first answer: a map bounded at max keys, the least recently
// used going first, each key forgotten ttl after it was first seen.
type memo struct {
	mu  sync.Mutex
	max int
	lru *list.List               // of *memoEntry, most recently used first
	m   map[string]*list.Element // key → its element in lru
}

type memoEntry struct {
	key     string
	hash    string
	expires time.Time
	ans     *Answer // nil while the first request runs
}

func newMemo(max int) *memo {
	return &memo{max: max, lru: list.New(), m: map[string]*list.Element{}}
}

// begin looks key up. A key seen before (and not expired) answers at once:
// its first answer, marked Repeat; ErrIdempotencyInFlight while the first
// request runs; store.ErrIdempotencyConflict for another body. A new key
// is remembered as running, and the caller must end its entry with finish
// or abort.
func (m *memo) begin(key, hash string, now time.Time, ttl time.Duration) (*memoEntry, *Answer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.m[key]; el != nil {
		en := el.Value.(*memoEntry)
		if now.Before(en.expires) {
			m.lru.MoveToFront(el)
			switch {
			case en.hash != hash:
				return nil, nil, store.ErrIdempotencyConflict
			case en.ans == nil:
				return nil, nil, ErrIdempotencyInFlight
			}
			ans := *en.ans
			ans.Repeat = true
			return nil, &ans, nil
		}
		m.remove(el)
	}
	en := &memoEntry{key: key, hash: hash, expires: now.Add(ttl)}
	m.m[key] = m.lru.PushFront(en)
	for m.lru.Len() > m.max {
		m.remove(m.lru.Back())
	}
	return en, nil, nil
}

// finish keeps the first answer of en's key.
func (m *memo) finish(en *memoEntry, ans *Answer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	en.ans = ans
}

// abort forgets en's key: its first request got no answer to repeat.
func (m *memo) abort(en *memoEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.m[en.key]; el != nil && el.Value == en {
		m.remove(el)
	}
}

func (m *memo) remove(el *list.Element) {
	delete(m.m, el.Value.(*memoEntry).key)
	m.lru.Remove(el)
}

// len is how many keys m remembers.
func (m *memo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}
