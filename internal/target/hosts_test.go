package target

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostServer is a real HTTP server standing in for one host of a target:
// it counts calls by Idempotency-Key and answers status (200 unless set).
type hostServer struct {
	srv    *httptest.Server
	status atomic.Int64
	hold   chan struct{} // when set, every request waits for it to close
	mu     sync.Mutex
	keys   []string
	paths  []string
}

func newHostServer(t *testing.T) *hostServer {
	t.Helper()
	h := &hostServer{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.keys = append(h.keys, r.Header.Get("Idempotency-Key"))
		h.paths = append(h.paths, r.URL.RequestURI())
		hold := h.hold
		h.mu.Unlock()
		if hold != nil {
			<-hold
		}
		st := int(h.status.Load())
		if st == 0 {
			st = http.StatusOK
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostServer) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.keys)
}

// testClock is an injected clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func threeHosts(t *testing.T, balance string, clock *testClock) ([]*hostServer, *Endpoint) {
	t.Helper()
	hs := []*hostServer{newHostServer(t), newHostServer(t), newHostServer(t)}
	var urls []string
	for _, h := range hs {
		urls = append(urls, h.srv.URL+"/api")
	}
	ep := &Endpoint{Name: "catalog", URL: urls[0], Method: http.MethodGet,
		Hosts: NewHostPool(HostPoolOptions{URLs: urls, Balance: balance, Failures: 3, CoolOff: 30 * time.Second, Now: clock.Now})}
	return hs, ep
}

func TestHostPoolRoundRobinSpreads(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Unix(1000, 0)}
	hs, ep := threeHosts(t, BalanceRoundRobin, clock)
	c := NewCaller(CallerOptions{})
	defer c.Close()
	for i := range 30 {
		// Each request is built against the first host's URL, path and
		// query included; the pool moves it to its host.
		res := c.Do(context.Background(), &Request{Endpoint: ep, URL: ep.URL + "/items?page=" + string(rune('a'+i%26))})
		if res.Err != nil {
			t.Fatalf("call %d: %v", i, res.Err)
		}
		if !strings.HasPrefix(res.Host, "http://127.0.0.1:") {
			t.Fatalf("Result.Host = %q", res.Host)
		}
	}
	for i, h := range hs {
		if n := h.calls(); n != 10 {
			t.Errorf("host %d got %d calls, want 10 (even spread)", i, n)
		}
		h.mu.Lock()
		if !strings.HasPrefix(h.paths[0], "/api/items?page=") {
			t.Errorf("host %d got path %q, want the request's path and query", i, h.paths[0])
		}
		h.mu.Unlock()
	}
}

func TestHostPoolLeastInFlight(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Unix(1000, 0)}
	hs, ep := threeHosts(t, BalanceLeastInFlight, clock)
	// Host 0 holds its requests: while one is in flight there, the next
	// two go to the idle hosts.
	hold := make(chan struct{})
	hs[0].mu.Lock()
	hs[0].hold = hold
	hs[0].mu.Unlock()
	c := NewCaller(CallerOptions{})
	defer c.Close()
	done := make(chan *Result, 1)
	go func() { done <- c.Do(context.Background(), &Request{Endpoint: ep}) }()
	deadline := time.Now().Add(10 * time.Second)
	for hs[0].calls() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if hs[0].calls() != 1 {
		t.Fatal("the first call did not reach host 0")
	}
	for range 4 {
		if res := c.Do(context.Background(), &Request{Endpoint: ep}); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	close(hold)
	if res := <-done; res.Err != nil {
		t.Fatal(res.Err)
	}
	if hs[0].calls() != 1 || hs[1].calls()+hs[2].calls() != 4 {
		t.Errorf("calls %d %d %d: the busy host should get none of the next four", hs[0].calls(), hs[1].calls(), hs[2].calls())
	}
	if snap := ep.Hosts.Snapshot(); snap[0].InFlight != 0 || snap[0].Attempts != 1 {
		t.Errorf("snapshot %+v", snap[0])
	}
}

func TestHostPoolEjectsAndReturnsAfterCoolOff(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Unix(1000, 0)}
	hs, ep := threeHosts(t, BalanceRoundRobin, clock)
	hs[1].status.Store(http.StatusServiceUnavailable)
	c := NewCaller(CallerOptions{})
	defer c.Close()
	call := func() *Result { return c.Do(context.Background(), &Request{Endpoint: ep}) }
	// Round robin sends every third call to host 1: three failures in a
	// row (Failures: 3) eject it.
	for range 9 {
		call()
	}
	if n := hs[1].calls(); n != 3 {
		t.Fatalf("host 1 got %d calls before its ejection, want 3", n)
	}
	snap := ep.Hosts.Snapshot()
	if snap[1].State != HostEjected || snap[1].Failures != 3 || snap[1].Ejections != 1 || !snap[1].EjectedUntil.Equal(clock.Now().Add(30*time.Second)) {
		t.Fatalf("host 1 %+v, want ejected for 30s", snap[1])
	}
	for range 20 {
		if res := call(); res.Err != nil {
			t.Fatalf("a call went to the ejected host: %v", res.Err)
		}
	}
	if n := hs[1].calls(); n != 3 {
		t.Fatalf("the ejected host got %d calls, want still 3", n)
	}
	// The cool-off ends: one probe goes to host 1. It still fails, so it is
	// ejected again at once (one failure, not three).
	clock.Add(30 * time.Second)
	for range 3 {
		call()
	}
	if n := hs[1].calls(); n != 4 {
		t.Fatalf("host 1 got %d calls after its cool-off, want 4 (one probe)", n)
	}
	if s := ep.Hosts.Snapshot()[1]; s.State != HostEjected || s.Ejections != 2 {
		t.Fatalf("after a failed probe host 1 is %+v, want ejected again", s)
	}
	// It recovers; after the next cool-off the probe succeeds and it takes
	// its share again.
	hs[1].status.Store(http.StatusOK)
	clock.Add(30 * time.Second)
	for range 9 {
		if res := call(); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if n := hs[1].calls(); n < 6 {
		t.Fatalf("host 1 got %d calls in all, want its share back after a good probe", n)
	}
	if s := ep.Hosts.Snapshot()[1]; s.State != HostHealthy || s.Failures != 0 {
		t.Fatalf("host 1 %+v, want healthy", s)
	}
}

func TestHostPoolRetryPrefersAnotherHost(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Unix(1000, 0)}
	hs, ep := threeHosts(t, BalanceRoundRobin, clock)
	for _, h := range hs {
		h.status.Store(http.StatusBadGateway)
	}
	c := NewCaller(CallerOptions{})
	defer c.Close()
	// Three attempts of one delivery (one Idempotency-Key): each goes to
	// another host than the attempt before, and the key is the same on
	// every host (it is the message's and step's, not the host's).
	var hosts []string
	for range 3 {
		res := c.Do(context.Background(), &Request{Endpoint: ep, IdempotencyKey: "m1.charge"})
		if res.Status != http.StatusBadGateway {
			t.Fatalf("status %d", res.Status)
		}
		hosts = append(hosts, res.Host)
		// Another delivery's attempt in between moves round robin on; the
		// retry must still avoid its own last host.
		c.Do(context.Background(), &Request{Endpoint: ep, IdempotencyKey: "m2.other"})
	}
	for i := 1; i < len(hosts); i++ {
		if hosts[i] == hosts[i-1] {
			t.Errorf("attempt %d went to %s again: %v", i+1, hosts[i], hosts)
		}
	}
	for _, h := range hs {
		h.mu.Lock()
		for _, k := range h.keys {
			if k != "m1.charge" && k != "m2.other" {
				t.Errorf("a host got Idempotency-Key %q", k)
			}
		}
		h.mu.Unlock()
	}
}

func TestHostVerdict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		res  *Result
		want hostVerdictKind
	}{
		{"2xx", &Result{Status: 200}, verdictUp},
		{"4xx shows the host up", &Result{Status: 404, Err: &Error{Kind: KindStatus, Status: 404}}, verdictUp},
		{"429 shows the host up", &Result{Status: 429, Err: &Error{Kind: KindStatus, Status: 429}}, verdictUp},
		{"5xx", &Result{Status: 503, Err: &Error{Kind: KindStatus, Status: 503}}, verdictDown},
		{"connect", &Result{Err: &Error{Kind: KindConnect}}, verdictDown},
		{"timeout", &Result{Err: &Error{Kind: KindTimeout}}, verdictDown},
		{"cancelled by tandem", &Result{Err: &Error{Kind: KindCanceled}}, verdictNeutral},
		{"never sent", &Result{Err: &Error{Kind: KindRequest}}, verdictNeutral},
		{"the token endpoint failed", &Result{Err: &Error{Kind: KindAuth}}, verdictNeutral},
		{"the host refused the token", &Result{Status: 401, Err: &Error{Kind: KindAuth, Status: 401}}, verdictUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostVerdict(tt.res); got != tt.want {
				t.Errorf("verdict %d, want %d", got, tt.want)
			}
		})
	}
}
