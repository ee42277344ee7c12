package main

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
)

// senderHeader carries the tandem incarnation that sent a request: each
// incarnation's config sets it on every target as "<replica>-<gen>".
const senderHeader = "X-Chaos-Sender"

// Target modes: what a target does to a share of its requests while a
// schedule event has the mode on.
const (
	modeFail       = "fail"        // 500 or 503
	modeStall      = "stall"       // hold longer than tandem's timeout
	modeReset      = "reset"       // reset the connection before doing the work
	modeOKReset    = "ok-reset"    // do the work, then reset the connection
	modeRetryAfter = "retry-after" // 429 or 503 with Retry-After
	modeSlow       = "slow"        // answer late, inside tandem's timeout
)

// targetModes are the modes a schedule picks from.
var targetModes = []string{modeFail, modeStall, modeReset, modeOKReset, modeRetryAfter, modeSlow}

// rule is one active mode on a target: it strikes pct percent of requests.
type rule struct {
	mode string
	pct  int
}

// target is one downstream API in the harness process. It records every
// request, answers as its active rules say, and is idempotent: once a
// key's work is done, the key is answered 2xx again (a real target keys
// its effects by Idempotency-Key), so a step whose work was done never
// gets a clean failure later.
type target struct {
	name    string
	seed    uint64
	timeout time.Duration // tandem's timeout.total for this target
	// declinePct of messages get a permanent 422 (a business refusal), by
	// message id.
	declinePct int
	basePct    int // share of 503s while no rule is on

	mu    sync.Mutex
	rules map[int]rule
	done  map[string]bool
	seen  map[string]int
	reqs  []history.Request
}

func newTarget(name string, seed uint64, timeout time.Duration, declinePct int) *target {
	return &target{name: name, seed: seed, timeout: timeout, declinePct: declinePct, basePct: 2,
		rules: map[int]rule{}, done: map[string]bool{}, seen: map[string]int{}}
}

// roll is a number in [0, 100) fixed by the seed and the words: the same
// request gets the same decision in a replayed schedule.
func (t *target) roll(words ...string) int {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], t.seed)
	h.Write(b[:])
	h.Write([]byte(t.name))
	for _, w := range words {
		h.Write([]byte{0})
		h.Write([]byte(w))
	}
	return int(h.Sum64() % 100)
}

func (t *target) setRule(id int, r rule) {
	t.mu.Lock()
	t.rules[id] = r
	t.mu.Unlock()
}

func (t *target) clearRule(id int) {
	t.mu.Lock()
	delete(t.rules, id)
	t.mu.Unlock()
}

// heal clears every rule and the base failures.
func (t *target) heal() {
	t.mu.Lock()
	t.rules = map[int]rule{}
	t.basePct = 0
	t.mu.Unlock()
}

// requests returns a copy of every request recorded.
func (t *target) requests() []history.Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]history.Request(nil), t.reqs...)
}

// decide picks what to do with the nth request of key.
func (t *target) decide(key string, n int) (mode string, done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done[key] {
		return "", true
	}
	nth := strconv.Itoa(n)
	id, _, _ := strings.Cut(key, ".")
	if t.declinePct > 0 && !strings.Contains(key, history.CompensationSuffix) && t.roll("decline", id) < t.declinePct {
		return "decline", false
	}
	ids := slices.Sorted(maps.Keys(t.rules))
	for _, rid := range ids {
		if t.roll(key, nth, strconv.Itoa(rid)) < t.rules[rid].pct {
			return t.rules[rid].mode, false
		}
	}
	if t.roll(key, nth, "base") < t.basePct {
		return modeFail, false
	}
	return "", false
}

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	var s history.Sender
	fmt.Sscanf(r.Header.Get(senderHeader), "%d-%d", &s.Replica, &s.Gen)
	t.mu.Lock()
	t.seen[key]++
	n := t.seen[key]
	t.mu.Unlock()
	mode, done := t.decide(key, n)
	nth := strconv.Itoa(n)

	// The target's own work takes a while: a few ms, a tail to 40ms, and
	// longer when slow or stalled. Overlaps of one key show inside it.
	hold := time.Duration(2+t.roll(key, nth, "hold")%20) * time.Millisecond
	if t.roll(key, nth, "tail") < 10 {
		hold += 20 * time.Millisecond
	}
	switch mode {
	case modeSlow:
		hold = t.timeout * time.Duration(30+t.roll(key, nth, "slow")%40) / 100
	case modeStall:
		hold = 2 * t.timeout
	}
	rec := history.Request{Target: t.name, Key: key, Sender: s, Start: start}
	timer := time.NewTimer(hold)
	select {
	case <-timer.C:
	case <-r.Context().Done():
		// The client went away (a timeout, a kill): nothing is done.
		timer.Stop()
		rec.Outcome, rec.End = history.Abandoned, time.Now()
		t.record(rec)
		return
	}
	switch {
	case done:
		t.answer(w, r, key, n, http.StatusOK, "")
		rec.Outcome, rec.Status = history.OK, http.StatusOK
	case mode == "decline":
		t.answer(w, r, key, n, http.StatusUnprocessableEntity, "")
		rec.Outcome, rec.Status = history.Decline, http.StatusUnprocessableEntity
	case mode == modeFail || mode == modeStall:
		code := http.StatusServiceUnavailable
		if t.roll(key, nth, "500") < 50 {
			code = http.StatusInternalServerError
		}
		t.answer(w, r, key, n, code, "")
		rec.Outcome, rec.Status = history.Fail, code
	case mode == modeRetryAfter:
		code := http.StatusTooManyRequests
		if t.roll(key, nth, "429") < 50 {
			code = http.StatusServiceUnavailable
		}
		t.answer(w, r, key, n, code, strconv.Itoa(1+t.roll(key, nth, "after")%2))
		rec.Outcome, rec.Status = history.RetryAfter, code
	case mode == modeReset:
		rec.Outcome = history.Reset
		if !reset(w, &rec) {
			t.answer(w, r, key, n, http.StatusServiceUnavailable, "")
			rec.Outcome, rec.Status = history.Fail, http.StatusServiceUnavailable
		}
	case mode == modeOKReset:
		t.markDone(key)
		rec.Outcome = history.OKReset
		if !reset(w, &rec) {
			t.answer(w, r, key, n, http.StatusOK, "")
			rec.Outcome, rec.Status = history.OK, http.StatusOK
		}
	default:
		t.markDone(key)
		t.answer(w, r, key, n, http.StatusOK, "")
		rec.Outcome, rec.Status = history.OK, http.StatusOK
	}
	if rec.End.IsZero() {
		rec.End = time.Now()
	}
	t.record(rec)
}

func (t *target) markDone(key string) {
	t.mu.Lock()
	t.done[key] = true
	t.mu.Unlock()
}

func (t *target) record(r history.Request) {
	t.mu.Lock()
	t.reqs = append(t.reqs, r)
	t.mu.Unlock()
}

// answer writes a JSON answer. Half the answers close the connection, so
// toxics, which act per connection, meet fresh connections, and the other
// half leave it open, so tandem's client reuses connections too.
func (t *target) answer(w http.ResponseWriter, r *http.Request, key string, n, code int, retryAfter string) {
	if t.roll(key, strconv.Itoa(n), "close") < 50 {
		w.Header().Set("Connection", "close")
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"id":%q,"target":%q}`, key, t.name)
}

// reset drops the connection with a TCP RST, answering nothing, and sets
// rec's end just before (the client may send again the moment it sees the
// reset); false when the connection cannot be taken over.
func reset(w http.ResponseWriter, rec *history.Request) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	rec.End = time.Now()
	_ = conn.Close()
	return true
}
