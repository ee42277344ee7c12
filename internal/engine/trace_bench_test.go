package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// BenchmarkTracingCostEngine is the engine's own share of tracing's cost:
// Ingest called directly (no HTTP) on two engines side by side, one with
// tracing off, one recording every span (sampling 1) and handing them in
// batches to an exporter that drops them. Batches of calls go to each in
// turn, so both see the same machine; it reports each one's time per
// call and the ratio on/off.
//
//	go test ./internal/engine -run '^$' -bench TracingCostEngine -benchtime 20000x -count 3
func BenchmarkTracingCostEngine(b *testing.B) {
	a := newTarget(b, fixed(http.StatusOK, `{"ok":true}`))
	c := newTarget(b, fixed(http.StatusOK, `{"ok":true}`))
	yaml := fmt.Sprintf(`
targets:
  a: { url: %q, concurrency: 64 }
  b: { url: %q, concurrency: 64 }
routes:
  - { name: sync, path: /sync, durable: false, respond: all, steps: [{ name: one, target: a }, { name: two, target: b }] }
  - { name: durable, path: /durable, steps: [{ name: one, target: a }, { name: two, target: b }] }
`, a.srv.URL, c.srv.URL)
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Exporter: tracetest.NewNoopExporter()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	engines := [2]*engine.Engine{start(b, yaml, engine.Options{}).eng, start(b, yaml, engine.Options{Tracing: tr}).eng}
	body := []byte(`{"sku":"A1","n":2}`)
	for _, route := range []string{"sync", "durable"} {
		b.Run(route, func(b *testing.B) {
			const callers, batch = 8, 64
			run := func(eng *engine.Engine, n int) time.Duration {
				var wg sync.WaitGroup
				begin := time.Now()
				for g := range callers {
					wg.Go(func() {
						for i := g; i < n; i += callers {
							ans, err := eng.Ingest(context.Background(), route, &engine.Inbound{Body: body, Header: http.Header{"Content-Type": {"application/json"}}})
							if err != nil || ans.HTTPStatus >= 300 {
								b.Errorf("ingest %s: %v %+v", route, err, ans)
								return
							}
						}
					})
				}
				wg.Wait()
				return time.Since(begin)
			}
			run(engines[0], batch)
			run(engines[1], batch)
			var took [2]time.Duration
			b.ResetTimer()
			for done, round := 0, 0; done < b.N; round++ {
				n := min(batch, b.N-done)
				first := round % 2
				took[first] += run(engines[first], n)
				took[1-first] += run(engines[1-first], n)
				done += n
			}
			b.StopTimer()
			off := float64(took[0].Nanoseconds()) / float64(b.N)
			on := float64(took[1].Nanoseconds()) / float64(b.N)
			b.ReportMetric(off, "off-ns/call")
			b.ReportMetric(on, "on-ns/call")
			b.ReportMetric(on/off, "traced/untraced")
		})
	}
}
