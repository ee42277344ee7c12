package fanout_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

// benchPayload is the request both sides send to both targets.
var benchPayload = []byte(`{"order":"A-1001","total":42.5,"items":[{"sku":"tent","qty":1},{"sku":"stove","qty":2}]}`)

// benchTarget answers every POST with a small JSON body.
func benchTarget() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true,"id":"x-1"}`))
	}))
}

// stdlibFanOut is the bare baseline: both POSTs in parallel with
// net/http, each answer read whole, the same Idempotency-Key header the
// library sends, and a merged result of the two bodies.
type stdlibFanOut struct {
	client *http.Client
	a, b   string
	seq    atomic.Int64
}

func (s *stdlibFanOut) run(ctx context.Context, body []byte) (map[string][]byte, error) {
	id := fmt.Sprint(s.seq.Add(1))
	call := func(url, step string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id+"."+step)
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return out, err
	}
	var ra []byte
	var ea error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ra, ea = call(s.a, "a") }()
	rb, eb := call(s.b, "b")
	wg.Wait()
	if ea != nil || eb != nil {
		return nil, fmt.Errorf("fan-out failed: %v %v", ea, eb)
	}
	return map[string][]byte{"a": ra, "b": rb}, nil
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round runs n calls of fn from workers goroutines and returns the wall
// time and the process CPU time they took, and how many failed. The CPU
// time includes the targets' (the same for both sides).
func round(workers, n int, fn func() error) (time.Duration, time.Duration, int64) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if fn() != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), cpuTime() - cpu0, failed.Load()
}

// BenchmarkLibraryVsStdlib measures library mode (a fanout.Runner) against
// a bare stdlib fan-out to the same two targets, in one run: each of b.N
// rounds runs roundSize fan-outs from 16 goroutines on each side, in
// alternating order, so drift in the machine's load hits both alike. It
// reports the throughput ratio library/stdlib (goal ≥ 0.95), each side's
// time per fan-out, and the ratio of CPU per fan-out.
//
//	go test ./fanout -run '^$' -bench LibraryVsStdlib -benchtime 10x
func BenchmarkLibraryVsStdlib(b *testing.B) {
	const workers, roundSize = 16, 1000
	ta, tb := benchTarget(), benchTarget()
	defer ta.Close()
	defer tb.Close()
	base := &stdlibFanOut{
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 1024}, Timeout: 10 * time.Second},
		a:      ta.URL, b: tb.URL,
	}
	r, err := fanout.New(fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: ta.URL, Concurrency: 1024}, {Name: "b", URL: tb.URL, Concurrency: 1024}},
		Plans:   []fanout.Plan{{Name: "fan", Steps: []fanout.Step{{Name: "a", Target: "a"}, {Name: "b", Target: "b"}}}},
		Logger:  quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	ctx := context.Background()
	stdlib := func() error { _, err := base.run(ctx, benchPayload); return err }
	library := func() error {
		res, err := r.Run(ctx, "fan", fanout.Request{Body: benchPayload})
		if err == nil && !res.OK() {
			err = fmt.Errorf("status %s", res.Status)
		}
		return err
	}
	// Warm both (connections, pools).
	_, _, _ = round(workers, roundSize/4, stdlib)
	_, _, _ = round(workers, roundSize/4, library)
	b.ResetTimer()
	var tStd, tLib, cStd, cLib time.Duration
	var fails int64
	for i := range b.N {
		first, second := stdlib, library
		if i%2 == 1 {
			first, second = library, stdlib
		}
		d1, c1, f1 := round(workers, roundSize, first)
		d2, c2, f2 := round(workers, roundSize, second)
		if i%2 == 1 {
			d1, d2, c1, c2 = d2, d1, c2, c1
		}
		tStd += d1
		tLib += d2
		cStd += c1
		cLib += c2
		fails += f1 + f2
	}
	b.StopTimer()
	if fails > 0 {
		b.Fatalf("%d fan-outs failed", fails)
	}
	n := float64(b.N * roundSize)
	b.ReportMetric(float64(tStd.Microseconds())/n, "stdlib-µs/fanout")
	b.ReportMetric(float64(tLib.Microseconds())/n, "library-µs/fanout")
	b.ReportMetric(float64(tStd)/float64(tLib), "library/stdlib")
	// CPU per fan-out (targets included) is steadier than wall time on a
	// shared machine: stdlib CPU over library CPU.
	b.ReportMetric(float64(cStd)/float64(cLib), "cpu-stdlib/library")
}
