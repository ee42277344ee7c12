// Command soak runs tandem at a steady rate with faults on, for a long
// time, and watches whether its memory and goroutines stay flat:
//
//	go run ./bench/soak -duration 10m
//
// Everything runs in this one process, on 127.0.0.1 only: the gateway (a
// real engine on a SQLite store in a temp dir, and the HTTP API), two
// targets, an in-process toxiproxy in front of the first target (latency
// with jitter, and resets on 5% of connections; the target closes every
// connection so each attempt gets its own), the second target answering
// 503 to 10% of requests, and the load generator (keep-alive clients,
// paced). Every 10s it samples the process's RSS (VmRSS from
// /proc/self/status), the Go heap and the goroutine count, and prints
// them with the backlog. At the end it stops the load, lets the backlog
// drain (bounded), prints the curve at start, middle and end, and a
// verdict: flat or growing. The number of messages (rate × duration) and
// the run time (duration + drain) are bounded.
//
// It is not part of go test.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// options are the command's flags.
type options struct {
	duration time.Duration
	rate     float64
	every    time.Duration
	drain    time.Duration
	workers  int
	resetPct float64
	failPct  int
	latency  int
	jitter   int
	dir      string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the load runs")
	flag.Float64Var(&o.rate, "rate", 500, "messages offered per second")
	flag.DurationVar(&o.every, "sample", 10*time.Second, "how often RSS and goroutines are sampled")
	flag.DurationVar(&o.drain, "drain", 2*time.Minute, "longest wait for the backlog to drain after the load")
	flag.IntVar(&o.workers, "workers", 64, "concurrent client connections")
	flag.Float64Var(&o.resetPct, "reset", 5, "percent of connections to the first target that are reset")
	flag.IntVar(&o.failPct, "fail", 10, "percent of requests the second target answers with 503")
	flag.IntVar(&o.latency, "latency", 10, "latency added to the first target's answers, ms")
	flag.IntVar(&o.jitter, "jitter", 5, "jitter of that latency, ms")
	flag.StringVar(&o.dir, "dir", "", "directory for the SQLite file (default: a temp dir, removed at the end)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.rate <= 0 || o.duration <= 0 || o.every <= 0 || o.workers <= 0 {
		return errors.New("rate, duration, sample and workers must be positive")
	}
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tandem-soak-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	slog.SetDefault(quiet)

	// Targets.
	shaky := newCounter(0, true)
	flaky := newCounter(o.failPct, false)
	shakySrv, err := serve(shaky)
	if err != nil {
		return err
	}
	defer shakySrv.Close()
	flakySrv, err := serve(flaky)
	if err != nil {
		return err
	}
	defer flakySrv.Close()

	// The proxy in front of the first target.
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tp, "shaky", "127.0.0.1:0", shakySrv.Addr)
	if err := proxy.Start(); err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	defer proxy.Stop()
	toxics := []string{
		fmt.Sprintf(`{"name":"lat","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`, o.latency, o.jitter),
		fmt.Sprintf(`{"name":"rst","type":"reset_peer","stream":"upstream","toxicity":%g,"attributes":{"timeout":0}}`, o.resetPct/100),
	}
	for _, tx := range toxics {
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(tx)); err != nil {
			return fmt.Errorf("add toxic: %w", err)
		}
	}

	// The gateway.
	gw, err := startGateway(dir, proxy.Listen, flakySrv.Addr, quiet)
	if err != nil {
		return err
	}
	defer gw.close()

	fmt.Printf("soak: %v at %.0f msg/s (%d messages), 2 steps per message; faults: first target behind toxiproxy "+
		"(latency %d±%dms, reset on %.1f%% of connections, one connection per attempt), second target 503 on %d%%; sample every %v\n",
		o.duration, o.rate, int(o.rate*o.duration.Seconds()), o.latency, o.jitter, o.resetPct, o.failPct, o.every)
	fmt.Printf("%8s %9s %9s %7s %8s %8s %8s %8s %10s %8s %9s %9s %8s\n",
		"t", "sent", "accepted", "errors", "rss_mib", "file_mib", "gosys_mib", "heap_mib", "goroutines", "backlog", "delivered", "ingest_p99", "fds")

	ld := &load{base: "http://" + gw.addr, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: o.workers, MaxIdleConns: o.workers},
	}}
	var samples []sample
	take := func(start time.Time) {
		s := measure(start, ld, gw)
		samples = append(samples, s)
		fmt.Println(s)
	}
	start := time.Now()
	take(start)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		ld.run(ctx, o.rate, o.workers, int(o.rate*o.duration.Seconds()))
	}()
	tick := time.NewTicker(o.every)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-tick.C:
			take(start)
		case <-loadDone:
			break sampling
		}
	}
	loadEnd := time.Now()
	take(start)

	// Drain: wait until every accepted message's two deliveries
	// succeeded (the engine's own count), or the drain time is over.
	want := 2 * int(ld.accepted.Load())
	deadline := time.Now().Add(o.drain)
	for succeeded(gw.reg) < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(loadEnd)
	take(start)

	report(o, samples, ld, shaky, flaky, gw, loadEnd.Sub(start), drained)
	return nil
}

// gateway is tandem running in this process.
type gateway struct {
	reg   *prometheus.Registry
	store store.Store
	eng   *engine.Engine
	http  *http.Server
	addr  string
}

func startGateway(dir, shakyAddr, flakyAddr string, logger *slog.Logger) (*gateway, error) {
	yaml := fmt.Sprintf(`
server: { max_body: 64KiB }
targets:
  shaky:
    url: http://%s/hook
    timeout: { connect: 1s, total: 2s }
    retry: { max_attempts: 20, initial: 50ms, max: 1s }
  flaky:
    url: http://%s/hook
    timeout: { connect: 1s, total: 2s }
    retry: { max_attempts: 20, initial: 50ms, max: 1s }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: shaky }
      - { name: b, target: flaky }
`, shakyAddr, flakyAddr)
	cfg, err := config.Parse([]byte(yaml), "soak.yaml")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	reg := telemetry.NewRegistry()
	metrics := telemetry.NewMetrics(reg)
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(dir, "soak.db"), Logger: logger, OnBatch: metrics.ObserveBatch})
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, Metrics: metrics})
	if err != nil {
		st.Close()
		return nil, err
	}
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Registry: reg, Logger: logger, Version: "soak"})
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := eng.Start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	gw := &gateway{reg: reg, store: st, eng: eng, addr: ln.Addr().String(),
		http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}}
	go func() { _ = gw.http.Serve(ln) }()
	return gw, nil
}

func (g *gateway) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.http.Shutdown(ctx)
	_ = g.eng.Shutdown(ctx)
	_ = g.store.Close()
}

// counter is a target: it counts requests and 2xx answers, in constant
// memory (the soak measures the process's memory, so the targets must not
// grow with the number of messages). With failPct it answers 503 to that
// share of requests; with closeConn it closes every connection after the
// answer.
type counter struct {
	failPct   int
	closeConn bool
	requests  atomic.Int64
	ok        atomic.Int64
}

func newCounter(failPct int, closeConn bool) *counter {
	return &counter{failPct: failPct, closeConn: closeConn}
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c.requests.Add(1)
	if c.closeConn {
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	if c.failPct > 0 && rand.IntN(100) < c.failPct {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"try later"}`)
		return
	}
	c.ok.Add(1)
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// server is a target's HTTP server on loopback.
type server struct {
	Addr string
	srv  *http.Server
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) Close() { _ = s.srv.Close() }

// load offers messages at a steady rate from a fixed pool of workers.
type load struct {
	base     string
	client   *http.Client
	sent     atomic.Int64
	accepted atomic.Int64
	errs     atomic.Int64
	late     atomic.Int64 // messages that could not be sent on time (all workers busy)
	lastErr  atomic.Value

	mu  sync.Mutex
	lat []time.Duration // ingest latencies since the last sample
}

// run sends at most total messages at r per second until ctx ends.
func (l *load) run(ctx context.Context, r float64, workers, total int) {
	jobs := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				l.send(n)
			}
		}()
	}
	// Message n is due at start + n/r. A sender that falls behind (a
	// slow wake-up) catches up at once, so the average rate holds.
	start := time.Now()
	interval := time.Duration(float64(time.Second) / r)
	for n := 0; n < total && ctx.Err() == nil; n++ {
		if wait := time.Until(start.Add(time.Duration(n) * interval)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			if ctx.Err() != nil {
				break
			}
		}
		select {
		case jobs <- n:
		default:
			l.late.Add(1) // every worker busy: the gateway is slower than the rate
			select {
			case jobs <- n:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
}

func (l *load) send(n int) {
	body := fmt.Sprintf(`{"order":%d,"items":["a","b","c"],"total":12.5}`, n)
	req, err := http.NewRequest(http.MethodPost, l.base+"/orders", strings.NewReader(body))
	if err != nil {
		l.fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("soak-%d", n))
	l.sent.Add(1)
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		l.fail(err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		l.fail(fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b)))
		return
	}
	d := time.Since(start)
	l.accepted.Add(1)
	l.mu.Lock()
	l.lat = append(l.lat, d)
	l.mu.Unlock()
}

func (l *load) fail(err error) {
	l.errs.Add(1)
	l.lastErr.Store(err.Error())
}

// takeLatencies returns the latencies since the last call and resets them.
func (l *load) takeLatencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lat
	l.lat = nil
	return out
}

// percentile returns the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p * float64(len(ds)-1))
	return ds[i]
}
