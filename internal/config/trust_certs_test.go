package config

import (
	"os"
	"testing"

	"github.com/tandem-run/tandem/internal/certfile/certtest"
)

// newTestCA writes ca.pem, tls.crt/tls.key and other.key into dir.
func newTestCA(t *testing.T, dir string) *certtest.CA {
	t.Helper()
	ca := certtest.NewCA(t, dir, "test")
	p := ca.Server(t, dir, "tls", "127.0.0.1")
	o := ca.Server(t, dir, "other", "127.0.0.1")
	mustRename(t, ca.File, dir+"/ca.pem")
	mustRename(t, p.CertFile, dir+"/tls.crt")
	mustRename(t, o.KeyFile, dir+"/other.key")
	return ca
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
