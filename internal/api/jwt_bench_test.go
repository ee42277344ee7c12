package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkAuthRatio times one ingest request through the handler with
// no auth, an API key, and a JWT of each algorithm, interleaved in the
// same loop so they share the machine's state, and reports each variant's
// cost as a ratio to the request without auth ("x_<variant>").
func BenchmarkAuthRatio(b *testing.B) {
	t := &testing.T{}
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["RS256"], keys["ES256"], keys["EdDSA"]))
	defer js.srv.Close()
	open, err := New(Options{Config: baseConfig(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	withJWT, err := New(Options{Config: jwtConfig(js.srv.URL), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	c := claims("ingest:orders admin", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() })
	variants := []struct {
		name, token string
		h           http.Handler
	}{
		{"none", "", open},
		{"apikey", "admin-key", withJWT},
		{"HS256", signHS(t, []byte(testHS256), c), withJWT},
		{"RS256", sign(t, keys["RS256"], c), withJWT},
		{"ES256", sign(t, keys["ES256"], c), withJWT},
		{"EdDSA", sign(t, keys["EdDSA"], c), withJWT},
	}
	spent := make([]time.Duration, len(variants))
	body := `{"order":42,"total":"19.90"}` // under baseConfig's max_body
	for b.Loop() {
		for i, v := range variants {
			r := httptest.NewRequest("POST", "/orders", strings.NewReader(body))
			if v.token != "" {
				r.Header.Set("Authorization", "Bearer "+v.token)
			}
			w := httptest.NewRecorder()
			start := time.Now()
			v.h.ServeHTTP(w, r)
			spent[i] += time.Since(start)
			if w.Code != http.StatusServiceUnavailable { // auth passed; no engine
				b.Fatalf("%s: %d %s", v.name, w.Code, w.Body)
			}
		}
	}
	for i, v := range variants {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), "ns_"+v.name)
		if i > 0 {
			b.ReportMetric(float64(spent[i])/float64(spent[0]), "x_"+v.name)
		}
	}
}
