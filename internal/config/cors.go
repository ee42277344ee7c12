package config

import (
	"net/url"
	"strings"
	"time"
)

// maxCORSMaxAge bounds server.cors.max_age (browsers cap it lower still).
const maxCORSMaxAge = Duration(24 * time.Hour)

// cors checks server.cors.
func (v *validator) cors(c *CORS) {
	const p = "server.cors"
	if c == nil {
		return
	}
	if !c.Enabled() {
		if c.AllowedMethods != nil || c.AllowedHeaders != nil || c.MaxAge != 0 {
			v.errf(joinKey(p, "allowed_origins"), "allowed_origins is required to turn CORS on, e.g. [\"https://shop.example\"]")
		}
		return
	}
	for i, o := range c.AllowedOrigins {
		op := joinIndex(joinKey(p, "allowed_origins"), i)
		if o == "*" {
			if len(c.AllowedOrigins) > 1 {
				v.errf(op, "\"*\" allows every origin: list no others beside it")
			}
			continue
		}
		if !isOrigin(o) {
			v.errf(op, "origin %s is not an origin: write scheme://host[:port], e.g. \"https://shop.example\", with no path", v.c.quote(op, o))
		}
	}
	for i, m := range c.AllowedMethods {
		mp := joinIndex(joinKey(p, "allowed_methods"), i)
		if m == "" || strings.Trim(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			v.errf(mp, "method %s is not a method: write it in capitals, e.g. POST", v.c.quote(mp, m))
		}
	}
	for i, h := range c.AllowedHeaders {
		hp := joinIndex(joinKey(p, "allowed_headers"), i)
		if h == "*" {
			if len(c.AllowedHeaders) > 1 {
				v.errf(hp, "\"*\" allows every header: list no others beside it")
			}
			continue
		}
		if h == "" || !isToken(h) {
			v.errf(hp, "header %s is not a header name, e.g. Idempotency-Key", v.c.quote(hp, h))
		}
	}
	if c.MaxAge < 0 || c.MaxAge > maxCORSMaxAge {
		v.errf(joinKey(p, "max_age"), "max_age must be between 0s and 24h")
	}
}

// isOrigin reports whether o is a browser origin: an http or https scheme
// and a host, with nothing else.
func isOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !strings.HasSuffix(o, "/") &&
		o == strings.ToLower(u.Scheme)+"://"+u.Host
}

// isToken reports whether s is an HTTP token (RFC 9110), as a header name
// must be.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}
