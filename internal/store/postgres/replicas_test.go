package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Close removes the rows of the replicas the store heartbeated for, so the
// others stop counting them at once.
func TestCloseLeaves(t *testing.T) {
	schema := newSchema(t)
	a := openStore(t, schema)
	b := openStore(t, schema)
	ctx := context.Background()
	now := time.Now()
	ttl := time.Minute
	if _, err := b.Heartbeat(ctx, "b1", now, ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Heartbeat(ctx, "b2", now, ttl); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Heartbeat(ctx, "a", now, ttl); err != nil || got != 3 {
		t.Fatalf("before close: %d %v, want 3", got, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Heartbeat(ctx, "a", now.Add(time.Second), ttl); err != nil || got != 1 {
		t.Fatalf("after close: %d %v, want 1", got, err)
	}
	if _, err := b.Heartbeat(ctx, "b1", now, ttl); err == nil {
		t.Fatal("heartbeat after close: no error")
	}
}

// A DSN whose search_path names one schema gets it created, and its own
// notification channel, as Config.Schema would.
func TestSchemaFromSearchPath(t *testing.T) {
	base := testDSN(t)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skip("needs TANDEM_TEST_POSTGRES as a postgres:// URL")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "sp_" + hex.EncodeToString(b)
	ctx := context.Background()
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := Open(ctx, Config{DSN: u.String(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if s.channel != channelName(schema) {
		t.Errorf("channel %q, want %q", s.channel, channelName(schema))
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'deliveries'", schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("deliveries table in %s: %d %v", schema, n, err)
	}
}

func TestPlainSchema(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"tandem", "tandem"},
		{" t_1 ", "t_1"},
		{"Tandem", ""},
		{"a,b", ""},
		{`"$user", public`, ""},
		{"1abc", ""},
		{`"quoted"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := plainSchema(tt.in); got != tt.want {
				t.Errorf("plainSchema(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
