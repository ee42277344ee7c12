package ui

import (
	tapi "github.com/tandem-run/tandem/api"
)

// traceIDOf is the one place the message page takes its trace id from.
func traceIDOf(md *tapi.MessageDetail) string {
	if md == nil {
		return ""
	}
	return md.TraceID
}
