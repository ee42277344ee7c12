package benchrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgres measures P6: end to end on PostgreSQL with one replica against
// SQLite's (P3's run), and with three replicas as processes against one.
func (r *run) postgres(ctx context.Context) error {
	schema, drop, err := benchSchema(ctx, r.o.Postgres)
	if err != nil {
		return err
	}
	defer drop()
	dsn, err := withSearchPath(r.o.Postgres, schema)
	if err != nil {
		return err
	}
	st := storeSpec{"postgres", dsn}
	var cs []*child
	defer func() {
		for _, c := range cs {
			c.stop()
		}
	}()
	c, err := startChild(ctx, r.o, filepath.Join(r.o.work, "pg1"), st, r.a.url, r.b.url, r.dead, nil)
	if err != nil {
		return err
	}
	cs = append(cs, c)
	r.progress("P6", "PostgreSQL, 1 replica, warming up")
	if _, err := r.o.wrk(ctx, c.url+"/orders", min(r.o.Duration/4, 2*time.Second)); err != nil {
		return err
	}
	r.progress("P6", "PostgreSQL, 1 replica, end to end (%s)", r.o.Duration)
	one, d1, err := r.e2e(ctx, "P6", c)
	if err != nil {
		return err
	}
	for i := 2; i <= 3; i++ {
		c, err := startChild(ctx, r.o, filepath.Join(r.o.work, fmt.Sprintf("pg%d", i)), st, r.a.url, r.b.url, r.dead, nil)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	r.progress("P6", "PostgreSQL, 3 replicas, end to end (%s)", r.o.Duration)
	three, d3, err := r.e2e(ctx, "P6", cs...)
	if err != nil {
		return err
	}
	x := ratio(one, r.p3Rate)
	y := ratio(three, one)
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P6", Name: "PostgreSQL end to end vs SQLite's; 3 replicas (processes) vs 1",
		Tandem: fmt.Sprintf("%.0f msg/s (1 replica), %.0f (3 replicas)", one, three),
		Base:   fmt.Sprintf("%.0f msg/s (SQLite)", r.p3Rate), Ratio: x, Unit: "×",
		Goal: "≥ 0.8× SQLite's; 3 replicas ≥ 1 replica", Met: x >= 0.8 && y >= 1.0,
		Details: []string{"1 replica: " + d1, fmt.Sprintf("3 replicas (%.2f× 1 replica): %s", y, d3)},
	})
	return nil
}

// withSearchPath puts the bench's schema first on the DSN's search path.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("postgres dsn: %w", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}

// benchSchema creates a fresh schema and returns it with a func that
// drops it.
func benchSchema(ctx context.Context, dsn string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "bench_" + hex.EncodeToString(b)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(cctx)
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	return schema, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	}, nil
}
