package config

import (
	"net/url"
	"reflect"
	"regexp"
)

// RedactedValue replaces secret values in Redacted's copy.
const RedactedValue = "[redacted]"

// Redacted returns a deep copy of c that is safe to log or show: every
// value that came from ${env:} or ${file:}, every target credential, every
// API key hash and the password in store.dsn are replaced by
// RedactedValue (passwords inside the DSN and target URLs by "xxxxx").
func (c *Config) Redacted() *Config {
	cp, _ := deepCopy(reflect.ValueOf(c)).Interface().(*Config)
	if cp == nil {
		return nil
	}
	walkStrings(reflect.ValueOf(cp).Elem(), func(path, s string) (string, bool) {
		if s != "" && c.secrets[path] {
			return RedactedValue, true
		}
		return s, false
	})
	hide := func(s *string) {
		if *s != "" {
			*s = RedactedValue
		}
	}
	for _, src := range cp.Sources {
		if src == nil {
			continue
		}
		if u, err := url.Parse(src.URL); err == nil && u.User != nil {
			src.URL = u.Redacted()
		}
	}
	for _, t := range cp.Targets {
		if t == nil {
			continue
		}
		if u, err := url.Parse(t.URL); err == nil && u.User != nil {
			t.URL = u.Redacted()
		}
		hide(&t.Auth.Bearer)
		if t.Auth.Basic != nil {
			hide(&t.Auth.Basic.Password)
		}
		if t.Auth.Header != nil {
			hide(&t.Auth.Header.Value)
		}
		redactTrust(t, hide)
	}
	for i := range cp.Auth.Keys {
		hide(&cp.Auth.Keys[i].Hash)
	}
	// Export headers are credentials of a tracing vendor, as a rule.
	for k, v := range cp.Telemetry.Tracing.Headers {
		hide(&v)
		cp.Telemetry.Tracing.Headers[k] = v
	}
	if j := cp.Auth.JWT; j != nil {
		hide(&j.HS256Secret)
		j.JWKSURL = redactURL(j.JWKSURL)
	}
	cp.Store.DSN = redactDSN(cp.Store.DSN)
	return cp
}

// redactTrust hides a target's signing secrets and OAuth2 client secret.
func redactTrust(t *Target, hide func(*string)) {
	if o := t.Auth.OAuth2; o != nil {
		hide(&o.ClientSecret)
		o.TokenURL = redactURL(o.TokenURL)
	}
	if s := t.Sign; s != nil {
		if sw := s.StandardWebhooks; sw != nil {
			hide(&sw.Secret)
			for i := range sw.Secrets {
				hide(&sw.Secrets[i])
			}
		}
		if s.HMAC != nil {
			hide(&s.HMAC.Secret)
		}
	}
}

// redactURL hides a URL's password.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// redactDSN hides the password of a URL or key=value DSN.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		dsn = u.Redacted()
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// deepCopy copies v and everything it points to. Unexported fields are
// left zero.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(deepCopy(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), deepCopy(iter.Value()))
		}
		return out
	}
	return v
}
