package target

import (
	"crypto/tls"
	"fmt"
	"sync"

	"github.com/tandem-run/tandem/internal/certfile"
)

// TLSOptions configure how tandem's TLS client meets one target.
type TLSOptions struct {
	// CAFile holds the PEM CA certificates the target's certificate must
	// chain to, instead of the system roots. Default: system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate for mutual TLS.
	// Default none.
	CertFile, KeyFile string
	// ServerName is the name verified in the target's certificate (and
	// sent as SNI). Default the URL's host.
	ServerName string
}

// TLSClient is a target's TLS client settings. The files are read when
// first needed and read again when they change (a rotated client
// certificate or CA bundle is used by the next new connection); a file
// that cannot be loaded fails the handshake as a permanent TLS error that
// names the file.
type TLSClient struct {
	opts TLSOptions
	pair *certfile.KeyPair
	cas  *certfile.Pool
	err  error

	// A resumed TLS session keeps the identity of the handshake that made
	// it, so sessions are cached per client certificate: a rotated one
	// starts a new cache and is presented on the next connection.
	mu       sync.Mutex
	sessions tls.ClientSessionCache
	cert     *tls.Certificate
}

// NewTLSClient loads the files now; a failure is kept and reported by
// every handshake (config validation loads them first, with file and line).
func NewTLSClient(o TLSOptions) *TLSClient {
	c := &TLSClient{opts: o}
	if o.CertFile != "" || o.KeyFile != "" {
		c.pair, c.err = certfile.NewKeyPair(o.CertFile, o.KeyFile)
	}
	if o.CAFile != "" && c.err == nil {
		c.cas, c.err = certfile.NewPool(o.CAFile)
	}
	return c
}

// config builds the tls.Config of one new connection from base.
func (c *TLSClient) config(base *tls.Config) (*tls.Config, error) {
	if c.err != nil {
		return nil, &tlsLoadError{err: c.err}
	}
	cfg := base.Clone()
	if c.opts.ServerName != "" {
		cfg.ServerName = c.opts.ServerName
	}
	if c.cas != nil {
		pool, err := c.cas.Get()
		if err != nil {
			return nil, &tlsLoadError{err: err}
		}
		cfg.RootCAs = pool
	}
	if c.pair != nil {
		cert, err := c.pair.Certificate()
		if err != nil {
			return nil, &tlsLoadError{err: err}
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
		c.mu.Lock()
		if c.cert != cert || c.sessions == nil {
			c.cert, c.sessions = cert, tls.NewLRUClientSessionCache(64)
		}
		cfg.ClientSessionCache = c.sessions
		c.mu.Unlock()
	}
	return cfg, nil
}

// tlsLoadError is a target's TLS file that could not be loaded: permanent,
// like any TLS failure.
type tlsLoadError struct{ err error }

func (e *tlsLoadError) Error() string { return fmt.Sprintf("tls: %v", e.err) }
func (e *tlsLoadError) Unwrap() error { return e.err }
