package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
)

// BenchmarkCache compares, in one run, a cached route's answer from its
// cache (hit) with the in-memory fan-out it saves (miss: a fresh key
// each time, two real loopback targets called).
func BenchmarkCache(b *testing.B) {
	for _, mode := range []string{"miss", "hit"} {
		b.Run(mode, func(b *testing.B) {
			p := newBenchTarget(b)
			l := newBenchTarget(b)
			s := startB(b, fmt.Sprintf(cacheYAML, p.URL, l.URL, ", max_bytes: 64MiB"))
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					q := "sku=same"
					if mode == "miss" {
						q = fmt.Sprintf("sku=%d", n.Add(1))
					}
					a, err := s.Ingest(context.Background(), "product", &engine.Inbound{Query: parseQuery(q), Header: http.Header{}})
					if err != nil || a.HTTPStatus != 200 {
						b.Fatalf("ingest: %v", err)
					}
				}
			})
		})
	}
}

// TestMeasureReloadUnderLoad measures messages accepted and delivered per
// second before, during and after a run of reloads, under a bounded load
// loop, and checks that none is lost or delivered twice. It runs with
// TANDEM_MEASURE=1 and prints the figures.
func TestMeasureReloadUnderLoad(t *testing.T) {
	if os.Getenv("TANDEM_MEASURE") == "" {
		t.Skip("set TANDEM_MEASURE=1 to measure")
	}
	a := newKeyTarget(t, 0, fixed(200, `{}`))
	b := newKeyTarget(t, 0, fixed(200, `{}`))
	cfgAt := func(i int) string {
		extra := ""
		if i%2 == 1 {
			extra = extraRoute
		}
		return fmt.Sprintf(reloadYAML, a.srv.URL, 32+i%2, b.srv.URL, extra)
	}
	s := start(t, cfgAt(0), engine.Options{})
	const window = 3 * time.Second
	const maxMessages = 200000
	var phase atomic.Int32 // 0 before, 1 during, 2 after, 3 stop
	var accepted [3]atomic.Int64
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ph := phase.Load()
				if ph >= 3 {
					return
				}
				mu.Lock()
				full := len(ids) >= maxMessages
				mu.Unlock()
				if full {
					return
				}
				ans, err := s.eng.Ingest(context.Background(), "orders", &engine.Inbound{Body: []byte(`{"x":1}`), Header: http.Header{}})
				if err != nil {
					t.Errorf("ingest: %v", err)
					return
				}
				accepted[ph].Add(1)
				mu.Lock()
				ids = append(ids, ans.Body.ID)
				mu.Unlock()
			}
		}()
	}
	delivered := func() int { return len(a.counts()) }
	var got [3]int
	base := delivered()
	time.Sleep(window)
	got[0] = delivered() - base
	phase.Store(1)
	base = delivered()
	reloads := 0
	end := time.Now().Add(window)
	for time.Now().Before(end) {
		reloads++
		if _, err := s.eng.Reload(context.Background(), mustConfig(t, cfgAt(reloads))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	got[1] = delivered() - base
	phase.Store(2)
	base = delivered()
	time.Sleep(window)
	got[2] = delivered() - base
	phase.Store(3)
	wg.Wait()
	lost, dup := 0, 0
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range ids {
		for {
			md, err := s.store.MessageGet(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if md.Message.Status == record.MessageSucceeded {
				break
			}
			if time.Now().After(deadline) {
				lost++
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ca, cb := a.counts(), b.counts()
	for _, id := range ids {
		for _, c := range []int{ca[id+".a"], cb[id+".b"]} {
			switch {
			case c == 0:
				lost++
			case c > 1:
				dup++
			}
		}
	}
	secs := window.Seconds()
	fmt.Printf("reload under load: %d reloads in %s, %d messages\n", reloads, window, len(ids))
	fmt.Printf("| phase | accepted/s | delivered to a/s |\n| --- | ---: | ---: |\n")
	for i, name := range []string{"before", "during", "after"} {
		fmt.Printf("| %s | %.0f | %.0f |\n", name, float64(accepted[i].Load())/secs, float64(got[i])/secs)
	}
	fmt.Printf("lost %d, delivered twice %d\n", lost, dup)
	if lost != 0 || dup != 0 {
		t.Errorf("lost %d, duplicated %d", lost, dup)
	}
}
