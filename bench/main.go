// Command bench measures tandem against baselines in one run, on loopback:
//
//   - sync fan-out (durable: false, respond: all) against a bare stdlib
//     handler that POSTs to both targets in parallel;
//   - durable accept (respond: accepted, SQLite, fsync on) against the
//     disk's own rate of single fsyncs;
//   - end-to-end: messages delivered to both targets per second while
//     accepting at a fixed rate, and whether the backlog grows.
//
// Run it with: go run ./bench (flags: go run ./bench -h). It is not part of
// go test. Every load loop is bounded in time and count.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

func main() {
	dur := flag.Duration("duration", 8*time.Second, "how long each measured run lasts")
	conns := flag.Int("conns", 64, "concurrent client connections")
	e2eRate := flag.Float64("e2e-rate", 5000, "offered messages/s in the end-to-end run")
	only := flag.String("only", "", "run only: fanout, accept, e2e or pg (PostgreSQL and replicas; needs TANDEM_BENCH_POSTGRES or TANDEM_TEST_POSTGRES)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(*dur, *conns, *e2eRate, *only); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, conns int, e2eRate float64, only string) error {
	fmt.Printf("tandem bench: %s/%s, %d CPUs, GOMAXPROCS %d, %s per run, %d connections\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), dur, conns)
	a, err := newSink()
	if err != nil {
		return err
	}
	defer a.close()
	b, err := newSink()
	if err != nil {
		return err
	}
	defer b.close()
	if only == "" || only == "fanout" {
		if err := benchFanOut(a, b, dur, conns); err != nil {
			return err
		}
	}
	if only == "" || only == "accept" {
		if err := benchAccept(a, b, dur, conns); err != nil {
			return err
		}
	}
	if only == "" || only == "e2e" {
		if err := benchEndToEnd(a, b, dur, conns, e2eRate); err != nil {
			return err
		}
	}
	if only == "pg" {
		if err := benchPostgres(a, b, dur, conns); err != nil {
			return err
		}
	}
	return nil
}

// sink is a sample target: it answers 200 with a small JSON body and counts
// requests.
type sink struct {
	srv   *http.Server
	url   string
	count atomic.Int64
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.count.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"id":"abc123"}`)
	})}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *sink) close() { s.srv.Close() }

// serveHandler serves h on a loopback port.
func serveHandler(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// result is one load run's figures.
type result struct {
	n, errs int
	elapsed time.Duration
	lat     []time.Duration
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// load sends POSTs from conns workers until dur passes or limit requests
// were sent; lim, when set, paces the whole load.
func load(url string, body []byte, conns int, dur time.Duration, limit int64, want int, lim *rate.Limiter) result {
	tr := &http.Transport{MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent atomic.Int64
	var mu sync.Mutex
	var all result
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			n, errs := 0, 0
			for ctx.Err() == nil && sent.Add(1) <= limit {
				if lim != nil && lim.Wait(ctx) != nil {
					break
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					errs++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
				n++
			}
			mu.Lock()
			all.n += n
			all.errs += errs
			all.lat = append(all.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	return all
}

const payload = `{"order":"A-1001","total":42.5,"items":[{"sku":"tent","qty":1},{"sku":"stove","qty":2}]}`

// baseline is the bare stdlib fan-out: POST to both targets in parallel,
// answer with both bodies.
func baseline(a, b string) http.Handler {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 1024}, Timeout: 10 * time.Second}
	call := func(url string, body []byte) ([]byte, error) {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ra, rb []byte
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); ra, ea = call(a, body) }()
		rb, eb = call(b, body)
		wg.Wait()
		if ea != nil || eb != nil {
			http.Error(w, "upstream failed", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"a":%s,"b":%s}`, ra, rb)
	})
}

func buildConfig(yaml string) (*config.Config, error) {
	return config.Parse([]byte(yaml), "bench.yaml")
}

func benchFanOut(a, b *sink, dur time.Duration, conns int) error {
	cfg, err := buildConfig(fmt.Sprintf(`
targets:
  a: { url: "%s/a", concurrency: 1024 }
  b: { url: "%s/b", concurrency: 1024 }
routes:
  - name: fan
    path: /fan
    respond: all
    durable: false
    deadline: 10s
    steps: [{ name: a, target: a }, { name: b, target: b }]
`, a.url, b.url))
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{Config: cfg})
	if err != nil {
		return err
	}
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Registry: telemetry.NewRegistry()})
	if err != nil {
		return err
	}
	tURL, stopT, err := serveHandler(h)
	if err != nil {
		return err
	}
	defer stopT()
	bURL, stopB, err := serveHandler(baseline(a.url+"/a", b.url+"/b"))
	if err != nil {
		return err
	}
	defer stopB()
	body := []byte(payload)
	// Warm both, then alternate halves so drift in the machine's load
	// hits both sides alike.
	load(bURL, body, conns, dur/8, 1<<40, 200, nil)
	load(tURL+"/fan", body, conns, dur/8, 1<<40, 200, nil)
	var base, tan result
	for range 4 {
		r := load(bURL, body, conns, dur/4, 1<<40, 200, nil)
		base = merge(base, r)
		r = load(tURL+"/fan", body, conns, dur/4, 1<<40, 200, nil)
		tan = merge(tan, r)
	}
	fmt.Println("## Sync fan-out to two targets (durable: false, respond: all)")
	fmt.Println()
	fmt.Println("| | requests/s | p50 | p99 | errors |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	row("stdlib fan-out (baseline)", base)
	row("tandem", tan)
	fmt.Printf("\nratio tandem/baseline: throughput %.2f, p99 %.2f× (goal: throughput ≥ 1.0, p99 ≤ 1.2×)\n\n",
		tan.rps()/base.rps(), float64(tan.pct(0.99))/float64(base.pct(0.99)))
	return nil
}

func merge(a, b result) result {
	return result{n: a.n + b.n, errs: a.errs + b.errs, elapsed: a.elapsed + b.elapsed, lat: append(a.lat, b.lat...)}
}

func row(name string, r result) {
	fmt.Printf("| %s | %.0f | %s | %s | %d |\n", name, r.rps(), r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), r.errs)
}

// fsyncRate measures the disk's rate of single small write+fsync pairs.
func fsyncRate(dir string, dur time.Duration) (float64, error) {
	f, err := os.Create(filepath.Join(dir, "fsync.bin"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 128)
	n := 0
	start := time.Now()
	for time.Since(start) < dur && n < 10_000_000 {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// ordersConfig is the durable benchmark route: POST /orders answers 202 and
// delivers to both sinks, on the given store.
func ordersConfig(driver, dsn string, a, b *sink) (*config.Config, error) {
	return buildConfig(fmt.Sprintf(`
store: { driver: %s, dsn: %q }
targets:
  a: { url: "%s/a", concurrency: 64 }
  b: { url: "%s/b", concurrency: 64 }
routes:
  - name: orders
    path: /orders
    respond: accepted
    steps: [{ name: a, target: a }, { name: b, target: b }]
`, driver, dsn, a.url, b.url))
}

func durableGateway(a, b *sink, dir string, startWorkers bool) (string, *engine.Engine, store.Store, func(), error) {
	cfg, err := ordersConfig("sqlite", filepath.Join(dir, "bench.db"), a, b)
	if err != nil {
		return "", nil, nil, nil, err
	}
	reg := telemetry.NewRegistry()
	m := telemetry.NewMetrics(reg)
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: cfg.Store.DSN, OnBatch: func(n int) {
		m.ObserveBatch(n)
		batches.Add(1)
		batchOps.Add(int64(n))
	}})
	if err != nil {
		return "", nil, nil, nil, err
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Metrics: m})
	if err != nil {
		return "", nil, nil, nil, err
	}
	if startWorkers {
		if err := eng.Start(context.Background()); err != nil {
			return "", nil, nil, nil, err
		}
	}
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Registry: reg})
	if err != nil {
		return "", nil, nil, nil, err
	}
	u, stop, err := serveHandler(h)
	if err != nil {
		return "", nil, nil, nil, err
	}
	return u, eng, st, func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(ctx)
		_ = st.Close()
	}, nil
}

// batches and batchOps count the SQLite store's group commits.
var batches, batchOps atomic.Int64

func batchStats() string {
	b, o := batches.Swap(0), batchOps.Swap(0)
	if b == 0 {
		return "no commits"
	}
	return fmt.Sprintf("%d commits, %.1f writes per commit", b, float64(o)/float64(b))
}

func benchAccept(a, b *sink, dur time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "tandem-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fs, err := fsyncRate(dir, 2*time.Second)
	if err != nil {
		return err
	}
	u, _, _, stop, err := durableGateway(a, b, dir, false)
	if err != nil {
		return err
	}
	defer stop()
	body := []byte(payload)
	load(u+"/orders", body, conns, dur/8, 1<<40, 202, nil)
	batchStats()
	r := load(u+"/orders", body, conns*2, dur, 1<<40, 202, nil)
	group := batchStats()
	fmt.Println("## Durable accept (respond: accepted, SQLite WAL, synchronous=FULL)")
	fmt.Println()
	fmt.Println("| | per second | p50 | p99 | errors |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	fmt.Printf("| single write+fsync (disk baseline) | %.0f | | | |\n", fs)
	row(fmt.Sprintf("tandem accepts (%d connections)", conns*2), r)
	fmt.Printf("\nratio accepts/single fsyncs: %.1f× (goal: ≥ 15,000/s and ≥ 15×); group commit: %s\n\n", r.rps()/fs, group)
	return nil
}

func benchEndToEnd(a, b *sink, dur time.Duration, conns int, offered float64) error {
	dir, err := os.MkdirTemp("", "tandem-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	u, _, st, stop, err := durableGateway(a, b, dir, true)
	if err != nil {
		return err
	}
	defer stop()
	backlog := func() int {
		stats, err := st.DeliveryStats(context.Background(), nil)
		if err != nil {
			return -1
		}
		n := 0
		for _, s := range stats {
			n += s.Due + s.Running + s.Scheduled
		}
		return n
	}
	a0, b0 := a.count.Load(), b.count.Load()
	lim := rate.NewLimiter(rate.Limit(offered), int(offered/50)+1)
	var samples []string
	done := make(chan result, 1)
	go func() {
		done <- load(u+"/orders", []byte(payload), conns, dur, int64(offered*dur.Seconds()*1.1), 202, lim)
	}()
	tick := time.NewTicker(dur / 4)
	var r result
	start := time.Now()
loop:
	for {
		select {
		case r = <-done:
			break loop
		case <-tick.C:
			samples = append(samples, fmt.Sprintf("%.0fs: %d", time.Since(start).Seconds(), backlog()))
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	da, db := a.count.Load()-a0, b.count.Load()-b0
	delivered := min(da, db)
	endBacklog := backlog()
	// Drain: how long until the backlog is empty after the load stops.
	drainStart := time.Now()
	for backlog() > 0 && time.Since(drainStart) < 60*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	drain := time.Since(drainStart)
	fmt.Println("## End-to-end (accept and deliver to both targets at once)")
	fmt.Println()
	fmt.Println("| offered/s | accepted/s | delivered to both/s | accept p99 | backlog over the run | drain after |")
	fmt.Println("| ---: | ---: | ---: | ---: | --- | ---: |")
	fmt.Printf("| %.0f | %.0f | %.0f | %s | %s; end: %d | %s |\n", offered, r.rps(), float64(delivered)/elapsed.Seconds(),
		r.pct(0.99).Round(time.Microsecond), strings.Join(samples, ", "), endBacklog, drain.Round(time.Millisecond))
	fmt.Printf("\n(goal: ≥ 5,000 delivered/s with the backlog not growing)\n\n")
	return nil
}
