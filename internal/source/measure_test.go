package source_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/store/sqlite"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMeasureAcceptRate compares, in one run, how fast a NATS source and
// an HTTP route durably accept messages into the same kind of store. It
// runs with TANDEM_MEASURE=1 and prints the figures.
func TestMeasureAcceptRate(t *testing.T) {
	if os.Getenv("TANDEM_MEASURE") == "" {
		t.Skip("set TANDEM_MEASURE=1 to measure")
	}
	const n = 5000
	tgt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer tgt.Close()
	url := os.Getenv("TANDEM_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream := fmt.Sprintf("MEASURE%d", time.Now().UnixNano())
	defer js.DeleteStream(context.Background(), stream)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: stream, Subjects: []string{"m." + stream}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(context.Background(), "m."+stream, fmt.Appendf(nil, `{"n":"%d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := config.Parse(fmt.Appendf(nil, `sources:
  bus: {kind: nats, url: %q, stream: %s, max_in_flight: 256}
targets:
  billing: {url: %q}
  shipping: {url: %q}
routes:
  - name: orders
    source: bus
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, url, stream, tgt.URL, tgt.URL), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sst, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer sst.Close()
	seng, err := engine.New(engine.Options{Config: sc, Store: sst})
	if err != nil {
		t.Fatal(err)
	}
	_ = seng.Start(context.Background())
	defer seng.Shutdown(context.Background())
	mgr, err := source.New(source.Options{Config: sc, Engine: seng, Store: sst})
	if err != nil {
		t.Fatal(err)
	}
	cons, _ := js.Stream(context.Background(), stream)
	start := time.Now()
	mgr.Start(context.Background())
	for {
		c, err := cons.Consumer(context.Background(), "tandem")
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.AckFloor.Consumer >= n {
				break
			}
		}
		if time.Since(start) > 120*time.Second {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srcRate := float64(n) / time.Since(start).Seconds()
	_ = mgr.Stop(context.Background())

	// HTTP: the same route served on a path, 64 concurrent clients.
	hc, err := config.Parse(fmt.Appendf(nil, `targets:
  billing: {url: %q}
  shipping: {url: %q}
routes:
  - name: orders
    path: /orders
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, tgt.URL, tgt.URL), "h.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "h.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Options{Config: hc, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	_ = eng.Start(context.Background())
	defer eng.Shutdown(context.Background())
	h, err := api.New(api.Options{Engine: eng, Config: hc})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	start = time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				req, _ := http.NewRequest("POST", srv.URL+"/orders", bytes.NewReader(fmt.Appendf(nil, `{"n":"%d"}`, i)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 202 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	httpRate := float64(n) / time.Since(start).Seconds()
	t.Logf("durable accept, %d messages, 2 steps, sqlite: nats source %.0f msg/s, http route %.0f msg/s (ratio %.2f)", n, srcRate, httpRate, srcRate/httpRate)
}
