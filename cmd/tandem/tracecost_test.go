package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
)

// BenchmarkTracingCost measures what tracing costs a caller: two servers
// run side by side in this process, one with tracing off (exporter none)
// and one exporting every span (sample_ratio 1) over OTLP/HTTP to a
// receiver in the test that takes each export and drops it (decoding it
// is a collector's work, on another machine in production; the OTLP
// tests decode); batches of requests go to each in turn, so both see the
// same machine. It reports each one's time per request and the
// ratio traced/untraced, for a durable: false fan-out to two targets that
// answer at once, the same to two that take 1ms (closer to real APIs),
// and for a durable accept (202, the deliveries made in the background).
//
//	go test ./cmd/tandem -run '^$' -bench TracingCost -benchtime 4000x
func BenchmarkTracingCost(b *testing.B) {
	var exports atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		exports.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(sink.Close)
	targets := make([]string, 4)
	for i := range targets {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if i >= 2 {
				// c and d stand for APIs that take a millisecond to answer.
				time.Sleep(time.Millisecond)
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		}))
		b.Cleanup(srv.Close)
		targets[i] = srv.URL
	}
	serve := func(tracing string) string {
		yaml := fmt.Sprintf(`server: { listen: "127.0.0.1:0" }
store: { driver: sqlite, dsn: %q }
log: { level: error }
telemetry: { tracing: %s }
targets:
  a: { url: %q, concurrency: 64 }
  b: { url: %q, concurrency: 64 }
  c: { url: %q, concurrency: 64 }
  d: { url: %q, concurrency: 64 }
routes:
  - { name: sync, path: /sync, durable: false, respond: all, steps: [{ name: one, target: a }, { name: two, target: b }] }
  - { name: slow, path: /slow, durable: false, respond: all, steps: [{ name: one, target: c }, { name: two, target: d }] }
  - { name: durable, path: /durable, steps: [{ name: one, target: a }, { name: two, target: b }] }
`, filepath.Join(b.TempDir(), "cost.db"), tracing, targets[0], targets[1], targets[2], targets[3])
		cfg, err := config.Parse([]byte(yaml), "cost.yaml")
		if err != nil {
			b.Fatal(err)
		}
		srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = srv.stop() })
		return "http://" + srv.addr.String()
	}
	off := serve(`{ exporter: none }`)
	on := serve(fmt.Sprintf(`{ exporter: otlp, endpoint: %q, protocol: http/protobuf, sample_ratio: 1 }`, sink.URL+"/v1/traces"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, bc := range []struct{ name, path string }{{"fanout", "/sync"}, {"fanout-1ms-targets", "/slow"}, {"accept", "/durable"}} {
		b.Run(bc.name, func(b *testing.B) {
			const clients, batch = 8, 64
			var took [2]time.Duration
			run := func(base string, n int) time.Duration {
				var wg sync.WaitGroup
				begin := time.Now()
				for c := range clients {
					wg.Go(func() {
						for i := c; i < n; i += clients {
							resp, err := client.Post(base+bc.path, "application/json", bytes.NewReader([]byte(`{"sku":"A1","n":2}`)))
							if err != nil {
								b.Error(err)
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode >= 300 {
								b.Errorf("%s: status %d", bc.path, resp.StatusCode)
								return
							}
						}
					})
				}
				wg.Wait()
				return time.Since(begin)
			}
			run(off, batch) // warm both up: connections, statements
			run(on, batch)
			b.ResetTimer()
			for done, round := 0, 0; done < b.N; round++ {
				n := min(batch, b.N-done)
				// Alternate which goes first, so neither always runs
				// behind the other's background deliveries.
				if round%2 == 0 {
					took[0] += run(off, n)
					took[1] += run(on, n)
				} else {
					took[1] += run(on, n)
					took[0] += run(off, n)
				}
				done += n
			}
			b.StopTimer()
			offNs := float64(took[0].Nanoseconds()) / float64(b.N)
			onNs := float64(took[1].Nanoseconds()) / float64(b.N)
			b.ReportMetric(offNs, "off-ns/req")
			b.ReportMetric(onNs, "on-ns/req")
			b.ReportMetric(onNs/offNs, "traced/untraced")
		})
	}
	if exports.Load() == 0 {
		// Batches go out every few seconds; at least the first must have.
		time.Sleep(6 * time.Second)
		if exports.Load() == 0 {
			b.Error("the traced server exported no span")
		}
	}
}
