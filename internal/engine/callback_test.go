package engine

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCallbackPolicy(t *testing.T) {
	t.Parallel()
	p := newCallbackPolicy([]string{"hooks.example.com", "*.partner.example", "127.0.0.1", "Internal.Example"})
	tests := []struct {
		url, refused string // refused: part of the reason, "" when accepted
	}{
		{"https://hooks.example.com/done", ""},
		{"http://HOOKS.example.com:8443/x?y=1", ""},
		{"https://a.partner.example/cb", ""},
		{"https://a.b.partner.example/cb", ""},
		{"http://127.0.0.1:9000/cb", ""},            // an internal address, listed exactly
		{"http://internal.example/cb", ""},          // names are case-insensitive
		{"https://partner.example/cb", "not in"},    // the wildcard needs a label below it
		{"https://evil.example.com/cb", "not in"},   // not listed
		{"http://10.0.0.7/cb", "not in"},            // private, not listed
		{"http://[::1]:80/cb", "not in"},            // loopback v6, not listed
		{"http://169.254.169.254/latest", "not in"}, // link-local (cloud metadata)
		{"ftp://hooks.example.com/x", "scheme"},
		{"https://user:pw@hooks.example.com/x", "credentials"},
		{"/relative", "scheme"},
		{"http:///nohost", "no host"},
	}
	for _, tt := range tests {
		_, _, err := p.check(tt.url)
		switch {
		case tt.refused == "" && err != nil:
			t.Errorf("%s refused: %v", tt.url, err)
		case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused) || !errors.Is(err, ErrCallbackRefused)):
			t.Errorf("%s: got %v, want a refusal about %q", tt.url, err, tt.refused)
		}
	}
	if _, _, err := newCallbackPolicy(nil).check("https://hooks.example.com/"); err == nil || !strings.Contains(err.Error(), "callback_hosts is empty") {
		t.Errorf("no hosts listed: %v", err)
	}
}

// TestCallbackResolvesInternal: a name allowed by a wildcard that
// resolves to an internal address is refused at send time; one listed
// exactly is not. (The lookup is the only part replaced: no DNS server
// here answers for these names.)
func TestCallbackResolvesInternal(t *testing.T) {
	t.Parallel()
	p := newCallbackPolicy([]string{"*.partner.example", "db.partner.example"})
	p.lookup = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		switch host {
		case "rebound.partner.example", "db.partner.example":
			return []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("10.1.2.3")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("203.0.113.10")}, nil
	}
	for raw, refused := range map[string]bool{
		"https://rebound.partner.example/cb": true,
		"https://db.partner.example/cb":      false, // listed exactly: allowed inside
		"https://ok.partner.example/cb":      false,
	} {
		u, exact, err := p.check(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		err = p.resolve(context.Background(), raw, u, exact)
		if got := err != nil; got != refused {
			t.Errorf("%s: resolve error %v, want refused=%v", raw, err, refused)
		}
		if refused && !strings.Contains(err.Error(), "resolves to 10.1.2.3") {
			t.Errorf("%s: reason %q", raw, err)
		}
	}
}

func TestCallbackDialGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for addr, refused := range map[string]bool{
		"127.0.0.1:80": true, "[::1]:443": true, "10.0.0.1:80": true, "192.168.1.1:80": true,
		"169.254.169.254:80": true, "0.0.0.0:80": true, "100.64.0.1:80": true, "[::ffff:127.0.0.1]:80": true,
		"203.0.113.5:443": false, "[2001:db8::1]:443": false,
	} {
		if got := dialGuard(ctx, "tcp", addr, nil) != nil; got != refused {
			t.Errorf("dial %s: refused=%v, want %v", addr, got, refused)
		}
	}
	if err := dialGuard(context.WithValue(ctx, exactHostKey{}, true), "tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("an exactly listed host is refused: %v", err)
	}
}
