// Package certfile loads TLS certificates and CA pools from PEM files and
// reloads them when the files change, so a certificate can be rotated
// (e.g. by cert-manager or certbot) without a restart.
//
// Invariants:
//   - a file is checked (one stat) when a handshake asks for it, never by
//     a background poller: a connection made after a rotation sees the new
//     file, one made before keeps what it got;
//   - a reload that fails (a half-written file, a key that does not match)
//     keeps the last good certificate and is retried on the next
//     handshake; only the first load can fail the caller;
//   - errors name the file, never its contents.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// stamp identifies one version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

func stat(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// KeyPair is a certificate and its private key, reloaded when either file
// changes.
type KeyPair struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	certAt   stamp
	keyAt    stamp
	lastErr  error
	reloaded int
}

// NewKeyPair loads the pair at once; an error names the file at fault.
func NewKeyPair(certFile, keyFile string) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile}
	if _, err := k.Certificate(); err != nil {
		return nil, err
	}
	return k, nil
}

// Certificate returns the current certificate, reloading it when a file
// changed since the last load. A failed reload keeps the last good one.
func (k *KeyPair) Certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, cerr := stat(k.certFile)
	ks, kerr := stat(k.keyFile)
	if k.cert != nil && (cerr != nil || kerr != nil || (cs == k.certAt && ks == k.keyAt)) {
		// Unchanged, or a file is gone for a moment mid-rotation.
		return k.cert, nil
	}
	if err := errors.Join(cerr, kerr); err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		k.lastErr = fmt.Errorf("load certificate %s with key %s: %w", k.certFile, k.keyFile, err)
		if k.cert != nil {
			return k.cert, nil
		}
		return nil, k.lastErr
	}
	k.cert, k.certAt, k.keyAt, k.lastErr = &cert, cs, ks, nil
	k.reloaded++
	return k.cert, nil
}

// Loads counts successful loads (the first one included).
func (k *KeyPair) Loads() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloaded
}

// LastError is the error of the last failed reload, nil after a good one.
func (k *KeyPair) LastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// Pool is a set of CA certificates from one PEM file, reloaded when the
// file changes.
type Pool struct {
	file string

	mu   sync.Mutex
	pool *x509.CertPool
	at   stamp
}

// NewPool loads the CA file at once.
func NewPool(file string) (*Pool, error) {
	p := &Pool{file: file}
	if _, err := p.Get(); err != nil {
		return nil, err
	}
	return p, nil
}

// Get returns the current pool, reloading it when the file changed. A
// failed reload keeps the last good pool.
func (p *Pool) Get() (*x509.CertPool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := stat(p.file)
	if p.pool != nil && (err != nil || st == p.at) {
		return p.pool, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load CA file: %w", err)
	}
	pool, err := LoadPool(p.file)
	if err != nil {
		if p.pool != nil {
			return p.pool, nil
		}
		return nil, err
	}
	p.pool, p.at = pool, st
	return pool, nil
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("load CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// ServerOptions configure a listener's TLS.
type ServerOptions struct {
	// CertFile and KeyFile are the server's certificate (with its chain)
	// and private key, PEM. Required.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes clients present a certificate signed by
	// one of its CAs.
	ClientCAFile string
	// VerifyIfGiven accepts clients without a certificate (a certificate
	// that is given must still verify). Default false: required.
	VerifyIfGiven bool
}

// ServerConfig builds a listener's tls.Config whose certificate and client
// CAs are reloaded on change, checked at each handshake.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	kp, err := NewKeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate()
		},
	}
	if o.ClientCAFile == "" {
		return base, nil
	}
	cas, err := NewPool(o.ClientCAFile)
	if err != nil {
		return nil, err
	}
	auth := tls.RequireAndVerifyClientCert
	if o.VerifyIfGiven {
		auth = tls.VerifyClientCertIfGiven
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool, err := cas.Get()
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.ClientCAs = pool
		c.ClientAuth = auth
		return c, nil
	}
	// Without GetConfigForClient (never the case here) these would apply.
	pool, _ := cas.Get()
	cfg.ClientCAs, cfg.ClientAuth = pool, auth
	return cfg, nil
}
