package target

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps what ParseRetryAfter returns: a target asking for a
// longer wait gets this long.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value: delta-seconds ("120")
// or an HTTP-date in any of the three formats http.ParseTime accepts,
// measured from now. It returns false for an empty or malformed value
// (including a negative number). A date at or before now yields 0, true:
// the target allows a retry at once. Values beyond MaxRetryAfter are
// capped to it.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) {
			// All digits, so the only possible error is a value too
			// large for int64: a very long wait.
			return MaxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d <= 0:
		return 0, true
	case d > MaxRetryAfter:
		return MaxRetryAfter, true
	}
	return d, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
