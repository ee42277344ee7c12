package engine_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

var benchLog = slog.New(slog.NewTextHandler(io.Discard, nil))

type benchTarget struct{ URL string }

func newBenchTarget(b *testing.B) *benchTarget {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"tent","price":189}`)
	}))
	b.Cleanup(srv.Close)
	return &benchTarget{URL: srv.URL}
}

func startB(b *testing.B, yaml string) *engine.Engine {
	b.Helper()
	cfg, err := config.Parse([]byte(yaml), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(b.TempDir(), "b.db"), Logger: benchLog})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: benchLog, PollInterval: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(ctx)
		_ = st.Close()
	})
	return eng
}

func parseQuery(q string) url.Values {
	v, _ := url.ParseQuery(q)
	return v
}
