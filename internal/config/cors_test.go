package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const corsBase = `targets: {pay: {url: "http://h"}}
routes: [{name: r, path: /r, steps: [{name: s, target: pay}]}]
`

func TestCORSDefaults(t *testing.T) {
	t.Parallel()
	off := mustParse(t, corsBase, nil)
	if off.Server.CORS.Enabled() || off.Server.CORS != nil {
		t.Errorf("CORS on by default: %+v", off.Server.CORS)
	}
	on := mustParse(t, corsBase+`server: {cors: {allowed_origins: ["https://shop.example"], max_age: 10m}}`, nil)
	c := on.Server.CORS
	if !c.Enabled() || !slices.Equal(c.AllowedMethods, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}) ||
		!slices.Equal(c.AllowedHeaders, []string{"Authorization", "Content-Type", "Idempotency-Key"}) || c.MaxAge.D() != 10*time.Minute {
		t.Errorf("cors %+v", c)
	}
	set := mustParse(t, corsBase+`server: {cors: {allowed_origins: ["*"], allowed_methods: [POST], allowed_headers: ["*"]}}`, nil)
	if !slices.Equal(set.Server.CORS.AllowedMethods, []string{"POST"}) || !slices.Equal(set.Server.CORS.AllowedHeaders, []string{"*"}) {
		t.Errorf("cors %+v", set.Server.CORS)
	}
}

func TestCORSUnknownKey(t *testing.T) {
	t.Parallel()
	got := parseErrors(t, corsBase+"server:\n  cors: {allowed_origins: [\"*\"], allowd_headers: [X-A]}\n")
	want := `t.yaml:4: server.cors: unknown key "allowd_headers" (did you mean "allowed_headers"?)`
	if len(got) != 1 || got[0] != want {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestCORSValidation(t *testing.T) {
	t.Parallel()
	src := corsBase + `server:
  cors:
    allowed_origins:
      - https://shop.example/
      - shop.example
      - "*"
      - https://user@shop.example
    allowed_methods: [post, "GET ", PATCH]
    allowed_headers: ["X Bad", Idempotency-Key, "*"]
    max_age: 48h
`
	want := []string{
		`t.yaml:6: server.cors.allowed_origins[0]: origin "https://shop.example/" is not an origin`,
		`t.yaml:7: server.cors.allowed_origins[1]: origin "shop.example" is not an origin`,
		`t.yaml:8: server.cors.allowed_origins[2]: "*" allows every origin: list no others beside it`,
		`t.yaml:9: server.cors.allowed_origins[3]: origin "https://user@shop.example" is not an origin`,
		`t.yaml:10: server.cors.allowed_methods[0]: method "post" is not a method: write it in capitals`,
		`t.yaml:10: server.cors.allowed_methods[1]: method "GET " is not a method`,
		`t.yaml:11: server.cors.allowed_headers[0]: header "X Bad" is not a header name`,
		`t.yaml:11: server.cors.allowed_headers[2]: "*" allows every header: list no others beside it`,
		`t.yaml:12: server.cors.max_age: max_age must be between 0s and 24h`,
	}
	got := parseErrors(t, src)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d =\n  %s\nwant prefix\n  %s", i, got[i], want[i])
		}
	}
	if got := parseErrors(t, corsBase+"server: {cors: {max_age: 1m}}\n"); len(got) != 1 || !strings.Contains(got[0], "allowed_origins is required") {
		t.Errorf("cors without origins: %v", got)
	}
}
