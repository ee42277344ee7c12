package target

import (
	"net/http"
	"slices"
)

// boundHeader returns the response headers to keep with an attempt: as
// many whole header values as fit in limit bytes (names and values
// counted, names in sorted order), like the body is capped by
// max_response_body, so a target cannot make tandem store or show
// megabytes of headers. A negative limit keeps none.
func boundHeader(h http.Header, limit int64) http.Header {
	if limit < 0 || len(h) == 0 {
		return nil
	}
	var total int64
	for k, vs := range h {
		for _, v := range vs {
			total += int64(len(k) + len(v))
		}
	}
	if total <= limit {
		return h
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make(http.Header, len(h))
	var used int64
	for _, k := range names {
		for _, v := range h[k] {
			n := int64(len(k) + len(v))
			if used+n > limit {
				continue
			}
			used += n
			out[k] = append(out[k], v)
		}
	}
	return out
}
