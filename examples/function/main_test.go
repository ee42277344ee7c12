package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/examples/sampleapi"
)

// TestRun serves the example's config and posts a sign-up: 202, committed
// to PostgreSQL, and not delivered (no worker runs in a function).
func TestRun(t *testing.T) {
	base := os.Getenv("TANDEM_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TANDEM_TEST_POSTGRES is unset, and CI must run the PostgreSQL tests")
		}
		t.Skip("TANDEM_TEST_POSTGRES is unset")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "fnexample_" + hex.EncodeToString(b)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	}()
	crm := sampleapi.CRM()
	crmURL, _ := crm.Serve(ctx)
	emailURL, _ := sampleapi.Email().Serve(ctx)
	env := map[string]string{"TANDEM_CONFIG": "tandem.yaml"}
	t.Setenv("DATABASE_URL", u.String())
	t.Setenv("CRM_URL", crmURL)
	t.Setenv("EMAIL_URL", emailURL)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, ln) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/signups", "application/json", strings.NewReader(`{"email":"ada@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /signups: %d", resp.StatusCode)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM deliveries").Scan(&n); err != nil || n != 2 {
		t.Errorf("deliveries in PostgreSQL: %d (%v), want 2", n, err)
	}
	if calls := crm.Calls("/"); len(calls) != 0 {
		t.Errorf("the CRM got %d calls; the function must not deliver", len(calls))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after ctx ended")
	}
}
