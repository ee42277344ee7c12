package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// CallbackHeader is the request header naming a URL that receives the
// message's summary once it is finished (an on_complete delivery).
const CallbackHeader = "Callback-Url"

// ErrCallbackRefused: a Callback-Url that server.callback_hosts does not
// allow (422 at ingest; a dead on_complete delivery at send time). The
// error is a *CallbackError.
var ErrCallbackRefused = errors.New("callback url refused")

// CallbackError says why a Callback-Url is refused.
type CallbackError struct {
	URL    string
	Reason string
}

func (e *CallbackError) Error() string {
	return fmt.Sprintf("Callback-Url %q refused: %s", e.URL, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCallbackRefused) hold.
func (e *CallbackError) Unwrap() error { return ErrCallbackRefused }

// callbackPolicy is server.callback_hosts compiled.
type callbackPolicy struct {
	exact  map[string]bool // lower-case names, and IPs in netip form
	suffix []string        // ".example.com" for "*.example.com"
	// lookup resolves a host name; net.DefaultResolver's.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

func newCallbackPolicy(hosts []string) *callbackPolicy {
	p := &callbackPolicy{exact: map[string]bool{}, lookup: net.DefaultResolver.LookupNetIP}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			p.suffix = append(p.suffix, "."+rest)
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			h = a.Unmap().String()
		}
		p.exact[h] = true
	}
	return p
}

// enabled reports whether any host is allowed.
func (p *callbackPolicy) enabled() bool { return len(p.exact)+len(p.suffix) > 0 }

// hostKey is the form a host is looked up under.
func hostKey(host string) string {
	host = strings.ToLower(host)
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.TrimSuffix(host, ".")
}

// allowed reports whether host is listed, and whether exactly (only an
// exact entry may reach a private address).
func (p *callbackPolicy) allowed(host string) (listed, exact bool) {
	k := hostKey(host)
	if p.exact[k] {
		return true, true
	}
	if _, err := netip.ParseAddr(k); err == nil {
		return false, false // a wildcard names host names, never addresses
	}
	for _, s := range p.suffix {
		if strings.HasSuffix(k, s) && len(k) > len(s) {
			return true, false
		}
	}
	return false, false
}

// check parses raw and checks it against the policy; it returns the URL
// and whether its host is listed exactly.
func (p *callbackPolicy) check(raw string) (*url.URL, bool, error) {
	refuse := func(why string) (*url.URL, bool, error) {
		return nil, false, &CallbackError{URL: raw, Reason: why}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return refuse("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return refuse("the scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return refuse("the URL has no host")
	case u.User != nil:
		return refuse("the URL must not hold credentials")
	case !p.enabled():
		return refuse("this server takes no callbacks (server.callback_hosts is empty)")
	}
	listed, exact := p.allowed(u.Hostname())
	if !listed {
		return refuse(fmt.Sprintf("host %s is not in server.callback_hosts", u.Hostname()))
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !exact && internalAddr(a) {
		return refuse(fmt.Sprintf("%s is a loopback, private or link-local address (list it exactly in server.callback_hosts to allow it)", a))
	}
	return u, exact, nil
}

// resolve looks host up and refuses it when it resolves to an internal
// address and is not listed exactly: a listed name cannot be pointed at
// the inside later.
func (p *callbackPolicy) resolve(ctx context.Context, raw string, u *url.URL, exact bool) error {
	if exact {
		return nil
	}
	addrs, err := p.lookup(ctx, "ip", u.Hostname())
	if err != nil {
		return nil // the call fails to connect and is retried
	}
	for _, a := range addrs {
		if internalAddr(a) {
			return &CallbackError{URL: raw, Reason: fmt.Sprintf("host %s resolves to %s, a loopback, private or link-local address (list the host exactly in server.callback_hosts to allow it)", u.Hostname(), a.Unmap())}
		}
	}
	return nil
}

// internalAddr reports whether a is loopback, private, link-local,
// unspecified, multicast or shared (carrier-grade NAT) address space.
func internalAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(a)
}

// exactHostKey marks, in a callback's context, that its host is listed
// exactly, so the dialer lets it reach an internal address.
type exactHostKey struct{}

// dialGuard refuses connections to internal addresses unless the
// callback's host is listed exactly: the check at send time cannot be
// undone by a DNS answer that changed since.
func dialGuard(ctx context.Context, _ string, address string, _ syscall.RawConn) error {
	if exact, _ := ctx.Value(exactHostKey{}).(bool); exact {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("callback: unexpected address %q", address)
	}
	if internalAddr(ap.Addr()) {
		return fmt.Errorf("callback: %s is an internal address not allowed by server.callback_hosts", ap.Addr())
	}
	return nil
}
