package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
)

// loader sends messages at a fixed rate, each with its own
// Idempotency-Key, and sends each again (same key, next replica) after a
// connection error or a 503 until it is acknowledged, for up to ackWithin.
type loader struct {
	prefix    string
	bases     []string
	client    *http.Client
	ackWithin time.Duration

	mu   sync.Mutex
	acks []history.Ack

	sent, acked, retried, repeated, gaveUp, bad atomic.Int64
	badText                                     atomic.Value
}

// run offers rate messages per second until stop closes; it returns when
// every message in hand is acknowledged or given up.
func (l *loader) run(stop <-chan struct{}, rate float64) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				l.send(n)
			}
		}()
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
loop:
	for n := 0; ; n++ {
		select {
		case <-stop:
			break loop
		case <-tick.C:
		}
		select {
		case work <- n:
		case <-stop:
			break loop
		}
	}
	close(work)
	wg.Wait()
}

// send delivers message n until it is acknowledged.
func (l *loader) send(n int) {
	l.sent.Add(1)
	route := "orders"
	if n%10 < 4 {
		route = "trips"
	}
	key := fmt.Sprintf("%s-%d", l.prefix, n)
	body := fmt.Sprintf(`{"n":%d,"total":%d.5,"items":["x%d"]}`, n, 10+n%90, n%7)
	deadline := time.Now().Add(l.ackWithin)
	for try := 0; time.Now().Before(deadline); try++ {
		if try == 1 {
			l.retried.Add(1)
		}
		id, repeated, retry, err := l.post(l.bases[(n+try)%len(l.bases)], route, key, body)
		if err == nil {
			if repeated {
				l.repeated.Add(1)
			}
			l.acked.Add(1)
			l.mu.Lock()
			l.acks = append(l.acks, history.Ack{Key: key, MessageID: id, Route: route, At: time.Now()})
			l.mu.Unlock()
			return
		}
		if !retry {
			l.bad.Add(1)
			l.badText.Store(fmt.Sprintf("%s: %v", key, err))
			return
		}
		time.Sleep(time.Duration(10+5*min(try, 10)) * time.Millisecond)
	}
	l.gaveUp.Add(1)
}

// post sends one try; retry says whether the answer allows another.
func (l *loader) post(base, route, key, body string) (id string, repeated, retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+route, strings.NewReader(body))
	if err != nil {
		return "", false, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := l.client.Do(req)
	if err != nil {
		return "", false, true, err // down, killed mid request: try again
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, true, err
	}
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK:
		var a struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
			return "", false, false, fmt.Errorf("answer %d without an id: %s", resp.StatusCode, b)
		}
		return a.ID, resp.Header.Get("Idempotent-Replayed") == "true", false, nil
	case http.StatusServiceUnavailable, http.StatusConflict:
		// 503: store away or shutting down, "may have been accepted";
		// 409: the first request with this key is still in flight.
		return "", false, true, fmt.Errorf("%d: %s", resp.StatusCode, b)
	}
	return "", false, false, fmt.Errorf("%d: %s", resp.StatusCode, b)
}

func (l *loader) snapshot() []history.Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]history.Ack(nil), l.acks...)
}
