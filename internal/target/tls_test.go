package target

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/certfile/certtest"
	"github.com/tandem-run/tandem/internal/record"
)

// mtlsTarget is an https target that requires a client certificate from
// clients and answers with the certificate's common name.
func mtlsTarget(t *testing.T, srv *certtest.Pair, clients *certtest.CA) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{srv.TLS}, ClientCAs: clients.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func TestTargetTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	clients := certtest.NewCA(t, dir, "clients")
	other := certtest.NewCA(t, dir, "other")
	srvPair := ca.Server(t, dir, "server", "127.0.0.1", "crm.internal")
	client := clients.Client(t, dir, "client", "tandem-client")
	ts := mtlsTarget(t, srvPair, clients)
	c := NewCaller(CallerOptions{})

	tests := []struct {
		name    string
		tls     TLSOptions
		want    string // body on success
		wantErr string // else a permanent KindTLS error containing this
	}{
		{"mutual TLS", TLSOptions{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, "tandem-client", ""},
		{"server name", TLSOptions{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "crm.internal"}, "tandem-client", ""},
		{"wrong server name", TLSOptions{CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "other.internal"}, "", "other.internal"},
		{"no client certificate", TLSOptions{CAFile: ca.File}, "", "refused the handshake"},
		{"untrusted server", TLSOptions{CAFile: other.File, CertFile: client.CertFile, KeyFile: client.KeyFile}, "", "unknown authority"},
		{"system roots", TLSOptions{}, "", "tls"},
		{"missing client key", TLSOptions{CAFile: ca.File, CertFile: client.CertFile, KeyFile: dir + "/nope.key"}, "", "nope.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Generous: loading the system roots and -race on a loaded machine.
			ep := &Endpoint{URL: ts.URL, TLS: NewTLSClient(tt.tls), Method: http.MethodGet, ConnectTimeout: 30 * time.Second, TotalTimeout: 60 * time.Second}
			res := c.Do(context.Background(), &Request{Endpoint: ep})
			if tt.wantErr == "" {
				if res.Err != nil || string(res.Body) != tt.want {
					t.Fatalf("got %q, %v; want %q", res.Body, res.Err, tt.want)
				}
				return
			}
			var te *Error
			if !errors.As(res.Err, &te) || te.Kind != KindTLS || res.Outcome != record.OutcomePermanent {
				t.Fatalf("got %v (outcome %v), want a permanent tls error", res.Err, res.Outcome)
			}
			if !strings.Contains(res.Err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", res.Err, tt.wantErr)
			}
		})
	}
}

// TestTargetTLSClientRotation: a rotated client certificate is used by
// the next new connection.
func TestTargetTLSClientRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	clients := certtest.NewCA(t, dir, "clients")
	ts := mtlsTarget(t, ca.Server(t, dir, "server", "127.0.0.1"), clients)
	first := clients.Client(t, dir, "client", "first")
	c := NewCaller(CallerOptions{DisableKeepAlives: true})
	ep := &Endpoint{URL: ts.URL, Method: http.MethodGet, ConnectTimeout: 30 * time.Second, TotalTimeout: 60 * time.Second, TLS: NewTLSClient(TLSOptions{CAFile: ca.File, CertFile: first.CertFile, KeyFile: first.KeyFile})}
	if res := c.Do(context.Background(), &Request{Endpoint: ep}); string(res.Body) != "first" {
		t.Fatalf("got %q, %v", res.Body, res.Err)
	}
	clients.Client(t, dir, "client", "second")
	if res := c.Do(context.Background(), &Request{Endpoint: ep}); string(res.Body) != "second" {
		t.Fatalf("after rotation got %q, %v", res.Body, res.Err)
	}
	// A broken file keeps the last good certificate.
	if err := os.WriteFile(first.KeyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := c.Do(context.Background(), &Request{Endpoint: ep}); string(res.Body) != "second" {
		t.Fatalf("after a broken rewrite got %q, %v", res.Body, res.Err)
	}
}
