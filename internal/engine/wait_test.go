package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// readCounter counts the message reads a waiting caller makes.
type readCounter struct {
	store.Store
	reads atomic.Int64
}

func (c *readCounter) MessageGet(ctx context.Context, id string) (*record.MessageDetail, error) {
	c.reads.Add(1)
	return c.Store.MessageGet(ctx, id)
}

// TestRespondAllReadsOnce: a durable respond: all caller is woken by each
// local completion with the message's status, and reads the message only
// once it is terminal: one read per request, however many steps.
func TestRespondAllReadsOnce(t *testing.T) {
	t.Parallel()
	a := newTarget(t, fixed(200, `{"id":"a-1"}`))
	b := newTarget(t, fixed(200, `{"id":"b-1"}`))
	c := newTarget(t, fixed(200, `{"id":"c-1"}`))
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q }
  c: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    deadline: 30s
    steps: [{ name: one, target: a }, { name: two, target: b }, { name: three, target: c, after: [one] }]
`, a.srv.URL, b.srv.URL, c.srv.URL)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	counted := &readCounter{Store: st}
	// A poll far away: only completions wake the caller.
	eng, err := engine.New(engine.Options{Config: cfg, Store: counted, PollInterval: 10 * time.Millisecond, WaitPoll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	for i := range 3 {
		before := counted.reads.Load()
		ans, err := eng.Ingest(ctx, "r", &engine.Inbound{Body: []byte(`{"x":1}`), Header: http.Header{"Content-Type": {"application/json"}}})
		if err != nil {
			t.Fatal(err)
		}
		if ans.HTTPStatus != http.StatusOK || len(ans.Body.Steps) != 3 || ans.Body.Steps["three"].HTTPStatus != 200 {
			t.Fatalf("message %d: answer %d %+v", i, ans.HTTPStatus, ans.Body)
		}
		if n := counted.reads.Load() - before; n != 1 {
			t.Errorf("message %d: %d reads of the message, want 1", i, n)
		}
	}
}
