package ui

import (
	"reflect"

	tapi "github.com/tandem-run/tandem/api"
)

// traceIDOf is the one place the message page takes its trace id from.
//
// TODO(seeing-trace): the tracing branch adds TraceID (json "trace_id")
// to api.MessageDetail; once it is merged this reads md.TraceID. Until
// then the field is looked up by name, so the page shows the id as soon
// as the view has it.
func traceIDOf(md *tapi.MessageDetail) string {
	if md == nil {
		return ""
	}
	f := reflect.ValueOf(md).Elem().FieldByName("TraceID")
	if f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}
