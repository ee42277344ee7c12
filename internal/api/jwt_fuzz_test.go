package api

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBearerToken: whatever the bearer token, the auth check answers 401
// (or lets a valid token through), never panics, and never echoes the
// token in its challenge.
func FuzzBearerToken(f *testing.F) {
	t := &testing.T{}
	keys := newKeys(t)
	file := f.TempDir() + "/jwks.json"
	if err := writeFile(file, jwks(keys["RS256"], keys["ES256"], keys["EdDSA"])); err != nil {
		f.Fatal(err)
	}
	cfg := jwtConfig("")
	cfg.Auth.JWT.JWKSURL, cfg.Auth.JWT.JWKSFile = "", file
	a, err := newAuthenticator(cfg, jwtOptions{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	good := sign(t, keys["ES256"], claims("admin", nil))
	for _, s := range []string{good, signHS(t, []byte(testHS256), claims("admin", nil)), "a.b.c", "..", "admin-key",
		good[:len(good)/2], strings.Replace(good, ".", "..", 1), "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		r := httptest.NewRequest("GET", "/v1/targets", nil)
		if !utf8.ValidString(token) || strings.ContainsAny(token, "\r\n\x00") {
			return // no client can send it as a header
		}
		r.Header.Set("Authorization", "Bearer "+token)
		_, p := a.admin(r)
		if p == nil {
			return
		}
		if p.Status != 401 && p.Status != 403 {
			t.Fatalf("status %d for %q", p.Status, token)
		}
		if tok := strings.TrimSpace(token); len(tok) > 8 && strings.Contains(p.header.Get("WWW-Authenticate"), tok) {
			t.Fatalf("the challenge echoes the token %q", token)
		}
	})
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }
