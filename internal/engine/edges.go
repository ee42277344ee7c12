package engine

import (
	"net/http"
	"net/url"

	"github.com/tandem-run/tandem/internal/config"
)

// ErrSchemaMismatch is matched (errors.Is) by the error Ingest returns
// for a body that fails its route's JSON Schema: a *SchemaError listing
// each violation. Nothing was stored. A broker source dead-letters such a
// message with the error's text as the reason.
var ErrSchemaMismatch = config.ErrSchemaMismatch

// SchemaError is a body that fails its route's JSON Schema.
type SchemaError = config.SchemaError

// admitInbound checks in against its route's schema, then trims it to
// what the route keeps: the headers of its store_headers list (never
// credentials), the query without credential-like parameters, and the
// idempotency key in the caller's own namespace.
func (e *Engine) admitInbound(rp *routePlan, in *Inbound) error {
	if err := rp.cfg.CheckBody(in.Body); err != nil {
		return err
	}
	in.Header = keepHeaders(in.Header, e.storedHeaders(rp))
	in.Query = dropCredentialParams(in.Query)
	if in.Caller != "" && in.IdempotencyKey != "" {
		in.IdempotencyKey = in.Caller + "/" + in.IdempotencyKey
	}
	return nil
}

// storedHeaders is the route's list of headers to keep.
func (e *Engine) storedHeaders(rp *routePlan) []string {
	if e.opts.Config == nil {
		return config.DefaultStoreHeaders
	}
	return e.opts.Config.StoredHeaders(rp.cfg)
}

// keepHeaders copies the named headers (canonical names) of h.
func keepHeaders(h http.Header, names []string) http.Header {
	if len(h) == 0 {
		return h
	}
	out := make(http.Header, len(names))
	for _, n := range names {
		if vs, ok := h[n]; ok {
			out[n] = vs
		}
	}
	// A Callback-Url is read back from the stored message when the
	// callback is sent (oncomplete.go); checkCallback has vetted it.
	if vs, ok := h[CallbackHeader]; ok {
		out[CallbackHeader] = vs
	}
	return out
}

// dropCredentialParams removes query parameters that carry credentials
// (?token=, ?api_key=, ...).
func dropCredentialParams(q url.Values) url.Values {
	for k := range q {
		if config.IsCredentialParam(k) {
			delete(q, k)
		}
	}
	return q
}
