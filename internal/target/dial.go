package target

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"
)

// connectTimeoutKey carries an endpoint's connect timeout in the request
// context down to the shared transport's dialers. The transport detaches
// the dial from the request's cancellation but keeps its values.
type connectTimeoutKey struct{}

func withConnectTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, connectTimeoutKey{}, d)
}

// dialer dials TCP and TLS for the shared transport, bounding both by the
// connect timeout found in the context.
type dialer struct {
	net net.Dialer
	tls *tls.Config // NextProtos offer h2 and http/1.1
	// tlsFor, when set, builds each connection's config from tls (a
	// target's own CA and client certificate, read anew when they change).
	tlsFor   func(base *tls.Config) (*tls.Config, error)
	fallback time.Duration
}

func (d *dialer) timeout(ctx context.Context) time.Duration {
	if t, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && t > 0 {
		return t
	}
	return d.fallback
}

// dialContext dials TCP within the connect timeout.
func (d *dialer) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.timeout(ctx)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.net.DialContext(cctx, network, addr)
	if err != nil {
		return nil, connectErr(ctx, cctx, timeout, err)
	}
	return conn, nil
}

// dialTLSContext dials TCP and completes the TLS handshake within one
// connect timeout. The transport hands the connection to its HTTP/2 client
// when the server picks h2.
func (d *dialer) dialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.timeout(ctx)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := d.net.DialContext(cctx, network, addr)
	if err != nil {
		return nil, connectErr(ctx, cctx, timeout, err)
	}
	cfg := d.tls.Clone()
	if d.tlsFor != nil {
		if cfg, err = d.tlsFor(d.tls); err != nil {
			raw.Close()
			return nil, err
		}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(cctx); err != nil {
		raw.Close()
		return nil, connectErr(ctx, cctx, timeout, err)
	}
	return conn, nil
}

// connectErr turns a failure caused by the connect deadline into a
// *connectTimeoutError; other errors pass through.
func connectErr(parent, cctx context.Context, timeout time.Duration, err error) error {
	if parent.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return &connectTimeoutError{after: timeout}
	}
	return err
}

// newTransport builds the one transport a Caller shares between all
// endpoints.
func newTransport(opts *CallerOptions) *http.Transport {
	base := opts.TLSConfig
	if base == nil {
		base = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		base = base.Clone()
	}
	if base.ClientSessionCache == nil {
		base.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	}
	dialTLS := base.Clone()
	dialTLS.NextProtos = []string{"h2", "http/1.1"}
	d := &dialer{
		net:      net.Dialer{KeepAlive: 30 * time.Second, ControlContext: opts.DialControl},
		tls:      dialTLS,
		fallback: opts.DefaultConnectTimeout,
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	return &http.Transport{
		Proxy:          opts.Proxy,
		DialContext:    d.dialContext,
		DialTLSContext: d.dialTLSContext,
		// Used only for https through an http proxy, where the transport
		// does the handshake itself; a backstop, not the per-endpoint bound.
		TLSClientConfig:     base,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
		IdleConnTimeout:     opts.IdleConnTimeout,
		DisableKeepAlives:   opts.DisableKeepAlives,
		ForceAttemptHTTP2:   true,
		Protocols:           protocols,
	}
}
