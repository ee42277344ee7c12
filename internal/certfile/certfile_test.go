package certfile_test

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/certfile"
	"github.com/tandem-run/tandem/internal/certfile/certtest"
)

// serve runs an HTTPS server on 127.0.0.1 with cfg and returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are the point
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who := "anonymous"
			if len(r.TLS.PeerCertificates) > 0 {
				who = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			_, _ = io.WriteString(w, who)
		}),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// get makes one request on a new connection and returns the body and the
// server certificate's serial.
func get(addr string, cfg *tls.Config) (string, string, error) {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.String(), err
}

func TestServerConfigReloadsCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	first := ca.Server(t, dir, "server", "127.0.0.1")
	cfg, err := certfile.ServerConfig(certfile.ServerOptions{CertFile: first.CertFile, KeyFile: first.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	client := &tls.Config{RootCAs: ca.Pool}
	_, serial, err := get(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if serial != first.Cert.SerialNumber.String() {
		t.Fatalf("serial %s, want the first certificate's %s", serial, first.Cert.SerialNumber)
	}

	// Rotate: same files, new certificate. The next connection sees it.
	second := ca.Server(t, dir, "server", "127.0.0.1")
	_, serial, err = get(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if serial != second.Cert.SerialNumber.String() {
		t.Fatalf("after rotation serial %s, want the new certificate's %s", serial, second.Cert.SerialNumber)
	}

	// A broken rewrite keeps the last good certificate.
	if err := os.WriteFile(second.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(second.CertFile, later, later)
	_, serial, err = get(addr, client)
	if err != nil {
		t.Fatalf("after a broken rewrite: %v", err)
	}
	if serial != second.Cert.SerialNumber.String() {
		t.Fatalf("after a broken rewrite serial %s, want the last good %s", serial, second.Cert.SerialNumber)
	}
}

func TestServerConfigMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	clients := certtest.NewCA(t, dir, "clients")
	other := certtest.NewCA(t, dir, "other")
	srv := ca.Server(t, dir, "server", "127.0.0.1")
	good := clients.Client(t, dir, "good", "shop")
	stranger := other.Client(t, dir, "stranger", "mallory")

	for _, ifGiven := range []bool{false, true} {
		cfg, err := certfile.ServerConfig(certfile.ServerOptions{
			CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: clients.File, VerifyIfGiven: ifGiven,
		})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, cfg)
		body, _, err := get(addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{good.TLS}})
		if err != nil || body != "shop" {
			t.Fatalf("verify_if_given=%v: client with a good certificate: %q, %v", ifGiven, body, err)
		}
		// Go's client sends no certificate the server's CAs did not sign,
		// so a stranger comes as anonymous at best, never as mallory.
		body, _, err = get(addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{stranger.TLS}})
		if body == "mallory" || (!ifGiven && err == nil) {
			t.Fatalf("verify_if_given=%v: a certificate from another CA was accepted: %q, %v", ifGiven, body, err)
		}
		// One that insists on sending it is refused in both modes.
		insist := &tls.Config{RootCAs: ca.Pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &stranger.TLS, nil
		}}
		if body, _, err := get(addr, insist); err == nil {
			t.Fatalf("verify_if_given=%v: a forced certificate from another CA was accepted: %q", ifGiven, body)
		}
		body, _, err = get(addr, &tls.Config{RootCAs: ca.Pool})
		switch {
		case ifGiven && (err != nil || body != "anonymous"):
			t.Fatalf("verify_if_given: client without certificate: %q, %v", body, err)
		case !ifGiven && err == nil:
			t.Fatal("require: a client without a certificate was accepted")
		}
	}
}

func TestKeyPairErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "ca")
	a := ca.Server(t, dir, "a", "127.0.0.1")
	b := ca.Server(t, dir, "b", "127.0.0.1")
	if _, err := certfile.NewKeyPair(dir+"/missing.pem", a.KeyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := certfile.NewKeyPair(a.CertFile, b.KeyFile); err == nil {
		t.Error("a key that does not match was accepted")
	}
	if _, err := certfile.NewPool(a.KeyFile); err == nil {
		t.Error("a key file was taken as a CA file")
	}
}
