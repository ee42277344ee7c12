package ui

import (
	"bytes"
	"encoding/json"
	"regexp"
	"unicode/utf8"
)

// maxExcerpt bounds a body excerpt, in bytes.
const maxExcerpt = 4096

// secretKey matches object keys whose values are hidden in excerpts.
var secretKey = regexp.MustCompile(`(?i)(pass(word|wd)?|secret|token|authori[sz]ation|api[-_]?key|apikey|credential|cookie|signature|private[-_]?key|session|card[-_]?number|cvv|ssn)`)

// excerpt renders a body (JSON, or a JSON string for other bodies) for a
// page: indented, values under secret-looking keys replaced, cut at
// maxExcerpt bytes.
func excerpt(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return cut(string(raw))
	}
	if s, ok := v.(string); ok {
		return cut(s)
	}
	b, err := json.MarshalIndent(redact(v), "", "  ")
	if err != nil {
		return ""
	}
	return cut(string(b))
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretKey.MatchString(k) {
				x[k] = "xxxxx"
				continue
			}
			x[k] = redact(e)
		}
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
	}
	return v
}

func cut(s string) string {
	if len(s) <= maxExcerpt {
		return s
	}
	s = s[:maxExcerpt]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "\n… (cut at 4 KiB)"
}
