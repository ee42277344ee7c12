package contract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// ErrNoOperation: the document has no operation with that operationId.
var ErrNoOperation = errors.New("no such operation")

// Violation is a call that breaks the contract. Kind is "request" or
// "response".
type Violation struct {
	Kind string
	Msg  string
}

// Error renders "request breaks the contract: <why>".
func (v *Violation) Error() string { return v.Kind + " breaks the contract: " + v.Msg }

// Operation is one operation of an OpenAPI document. It is safe for
// concurrent use.
type Operation struct {
	// ID is the operationId; Method and Path say where the document puts
	// it; File is the document's path.
	ID, Method, Path, File string
	// Hash is the sha256 of the document's bytes, hex: a reload compares
	// it to tell whether the contract changed.
	Hash string

	doc      *openapi3.T
	op       *openapi3.Operation
	opts     []openapi3.SchemaValidationOption
	bodyReq  bool             // the request body is required
	bodyJSON *openapi3.Schema // the JSON request body's schema, or nil
	hasBody  bool             // the operation declares a request body
}

// Load reads the OpenAPI document at file, validates it, and finds the
// operation id. A document that cannot be read or is not valid OpenAPI is
// an error naming the problem; a missing operation wraps ErrNoOperation
// and lists the ids the document has.
func Load(file, id string) (*Operation, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true // $refs to files beside it
	doc, err := loader.LoadFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("read OpenAPI document %s: %w", filepath.Base(file), err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("OpenAPI document %s is not valid: %w", filepath.Base(file), err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read OpenAPI document %s: %w", filepath.Base(file), err)
	}
	sum := sha256.Sum256(data)
	o := &Operation{ID: id, File: file, Hash: hex.EncodeToString(sum[:]), doc: doc}
	var ids []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID != "" {
				ids = append(ids, op.OperationID)
			}
			if op.OperationID == id {
				o.Method, o.Path, o.op = method, path, op
			}
		}
	}
	if o.op == nil {
		sort.Strings(ids)
		return nil, fmt.Errorf("%w %q in %s (it has: %s)", ErrNoOperation, id, filepath.Base(file), strings.Join(ids, ", "))
	}
	o.opts = doc.GetSchemaValidationOptions()
	if doc.IsOpenAPI31OrLater() {
		o.opts = append(o.opts, openapi3.EnableJSONSchema2020())
	}
	if rb := o.op.RequestBody; rb != nil && rb.Value != nil {
		o.hasBody = true
		o.bodyReq = rb.Value.Required
		if mt := jsonMedia(rb.Value.Content); mt != nil && mt.Schema != nil {
			o.bodyJSON = mt.Schema.Value
		}
	}
	return o, nil
}

// jsonMedia picks the JSON media type of content: application/json, a
// +json type, or a wildcard.
func jsonMedia(c openapi3.Content) *openapi3.MediaType {
	if mt := c.Get("application/json"); mt != nil {
		return mt
	}
	for k, mt := range c {
		if strings.HasSuffix(strings.ToLower(strings.TrimSpace(k)), "+json") {
			return mt
		}
	}
	return nil
}

// CheckRequest validates a rendered request body before it is sent. A
// body the operation does not allow is a *Violation with the schema's
// message. A body without a Content-Type is JSON when it parses as JSON
// (tandem then sends it as application/json), else opaque text.
func (o *Operation) CheckRequest(header http.Header, body []byte) error {
	if len(body) == 0 {
		if o.bodyReq {
			return &Violation{Kind: "request", Msg: "the operation requires a request body; none would be sent"}
		}
		return nil
	}
	if !o.hasBody {
		return &Violation{Kind: "request", Msg: fmt.Sprintf("operation %s declares no request body", o.ID)}
	}
	content := o.op.RequestBody.Value.Content
	ct := header.Get("Content-Type")
	if ct == "" && json.Valid(body) {
		ct = "application/json"
	}
	if ct == "" {
		for k := range content {
			if !isJSON(k) {
				return nil // text the operation may take: not judged
			}
		}
		return &Violation{Kind: "request", Msg: "the body is not JSON, and the operation takes only JSON"}
	}
	mt := content.Get(ct)
	if mt == nil && isJSON(ct) {
		mt = jsonMedia(content)
	}
	if mt == nil {
		return &Violation{Kind: "request", Msg: fmt.Sprintf("content type %q is not one the operation accepts", ct)}
	}
	if !isJSON(ct) || mt.Schema == nil || mt.Schema.Value == nil {
		return nil // not JSON, or no schema: nothing more to check
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return &Violation{Kind: "request", Msg: "the body is not JSON: " + err.Error()}
	}
	if err := mt.Schema.Value.VisitJSON(v, append(o.opts, openapi3.VisitAsRequest(), openapi3.MultiErrors())...); err != nil {
		return &Violation{Kind: "request", Msg: message(err)}
	}
	return nil
}

// CheckResponse checks an answer: its status is declared (exactly, by
// range such as 2XX, or by default), and a JSON body matches the declared
// schema. truncated bodies are not judged.
func (o *Operation) CheckResponse(status int, header http.Header, body []byte, truncated bool) error {
	if o.op.Responses == nil {
		return nil
	}
	ref := o.op.Responses.Status(status)
	if ref == nil {
		ref = o.op.Responses.Default()
	}
	if ref == nil || ref.Value == nil {
		return &Violation{Kind: "response", Msg: fmt.Sprintf("status %d is not declared by operation %s (declared: %s)", status, o.ID, strings.Join(declared(o.op.Responses), ", "))}
	}
	content := ref.Value.Content
	if len(body) == 0 || truncated || len(content) == 0 {
		return nil
	}
	ct := header.Get("Content-Type")
	mt := content.Get(ct)
	if mt == nil && ct == "" {
		mt = jsonMedia(content)
	}
	if mt == nil {
		return &Violation{Kind: "response", Msg: fmt.Sprintf("content type %q is not declared for status %d", ct, status)}
	}
	if mt.Schema == nil || mt.Schema.Value == nil || (ct != "" && !isJSON(ct)) {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return &Violation{Kind: "response", Msg: fmt.Sprintf("the body of status %d is not JSON: %v", status, err)}
	}
	if err := mt.Schema.Value.VisitJSON(v, append(o.opts, openapi3.VisitAsResponse(), openapi3.MultiErrors())...); err != nil {
		return &Violation{Kind: "response", Msg: fmt.Sprintf("status %d: %s", status, message(err))}
	}
	return nil
}

func declared(r *openapi3.Responses) []string {
	keys := slices.Clone(r.Keys())
	sort.Strings(keys)
	return keys
}

func isJSON(ct string) bool {
	base, _, _ := strings.Cut(strings.ToLower(ct), ";")
	base = strings.TrimSpace(base)
	return base == "application/json" || strings.HasSuffix(base, "+json")
}

// message turns a schema error into one short line per problem, each
// naming the JSON pointer of the offending value: "/amount: value must be
// a number". At most three problems are named.
func message(err error) string {
	var parts []string
	var add func(error)
	add = func(err error) {
		var me openapi3.MultiError
		if errors.As(err, &me) {
			for _, e := range me {
				add(e)
			}
			return
		}
		var se *openapi3.SchemaError
		if errors.As(err, &se) {
			p := "/" + strings.Join(se.JSONPointer(), "/")
			parts = append(parts, p+": "+se.Reason)
			return
		}
		line, _, _ := strings.Cut(err.Error(), "\n")
		parts = append(parts, line)
	}
	add(err)
	parts = slices.Compact(parts)
	if len(parts) > 3 {
		parts = append(parts[:3], "and "+strconv.Itoa(len(parts)-3)+" more")
	}
	return strings.Join(parts, "; ")
}
