package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
)

// openAPIHandler serves the OpenAPI 3.1 document of api as it is once every
// operation is registered, made exact by exactDocument (openapi_exact.go).
// Its servers entry names the scheme and Host the document was asked
// for, so a client generated from it calls the server it came from.
func (s *server) openAPIHandler(api huma.API) (http.Handler, error) {
	oapi := api.OpenAPI()
	if s.auth.enabled() {
		if oapi.Components.SecuritySchemes == nil {
			oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
		}
		oapi.Components.SecuritySchemes["bearer"] = &huma.SecurityScheme{
			Type: "http", Scheme: "bearer",
			Description: "An API key from auth.keys, as \"Authorization: Bearer <key>\".",
		}
	}
	s.documentPlain(api)
	raw, err := json.Marshal(oapi)
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode openapi document: %w", err)
	}
	if err := s.exactDocument(doc); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		// A shallow copy: only servers differs per request.
		d := make(map[string]any, len(doc)+1)
		for k, v := range doc {
			d[k] = v
		}
		d["servers"] = []any{map[string]any{"url": scheme + "://" + r.Host, "description": "The server this document was served by."}}
		b, err := json.Marshal(d)
		if err != nil {
			writeProblem(w, r, newProblem(internalKind(), "internal error"))
			return
		}
		w.Header().Set("Content-Type", "application/openapi+json")
		_, _ = w.Write(b)
	}), nil
}

// problemResponses documents error answers of an operation added by hand.
func problemResponses(api huma.API, op *huma.Operation, codes ...int) {
	schema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[Problem](), true, "Problem")
	for _, c := range codes {
		op.Responses[strconv.Itoa(c)] = &huma.Response{
			Description: http.StatusText(c),
			Content:     map[string]*huma.MediaType{problemContentType: {Schema: schema}},
		}
	}
}

// routeBodySchemaName is the component name of a route's body schema:
// "Route" + the route name in CamelCase + "Body".
func routeBodySchemaName(route string) string {
	var b strings.Builder
	b.WriteString("Route")
	for _, part := range strings.FieldsFunc(route, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	b.WriteString("Body")
	return b.String()
}

// documentRoute adds a configured route to the OpenAPI document, with the
// answers its respond mode and durability can give. The route is served
// by the ingest handler, not by huma.
func (s *server) documentRoute(api huma.API, rt *config.Route) {
	reg := api.OpenAPI().Components.Schemas
	answer := reg.Schema(reflect.TypeFor[engine.MessageAnswer](), true, "MessageAnswer")
	method := strings.ToUpper(rt.Method)
	if method == "" {
		method = http.MethodPost
	}
	respond := rt.Respond.Mode
	if respond == "" {
		respond = config.RespondAccepted
	}
	waits := respond != config.RespondAccepted
	durable := rt.IsDurable()
	desc := respond
	if respond == config.RespondSteps {
		desc = "steps " + strings.Join(rt.Respond.Steps, ", ")
	}
	body := &huma.RequestBody{
		Required:    true,
		Description: "Any body; JSON is checked when the content type says JSON.",
		Content: map[string]*huma.MediaType{
			"application/json":         {Schema: &huma.Schema{Description: "Any JSON value."}},
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary", Description: "Any other content type: opaque bytes."}},
		},
	}
	if rt.HasSchema() {
		body = &huma.RequestBody{
			Required:    true,
			Description: "A JSON body that meets the route's JSON Schema (draft 2020-12); one that does not gets 422 and is not stored.",
			Content: map[string]*huma.MediaType{
				"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/" + routeBodySchemaName(rt.Name)}},
			},
		}
		s.routeSchemas[routeBodySchemaName(rt.Name)] = rt
	}
	op := &huma.Operation{
		OperationID: "route-" + rt.Name,
		Method:      method,
		Path:        rt.Path,
		Summary:     "Route " + rt.Name,
		Description: fmt.Sprintf("Sends the request through route %s (respond: %s; durable: %v). "+
			"A JSON content type must carry valid JSON; other content types are taken as opaque bytes.", rt.Name, desc, durable),
		Tags: []string{"routes"},
		Parameters: []*huma.Param{{
			Name: "Idempotency-Key", In: "header",
			Description: "A repeat with the same key (from the same caller) returns the first message's answer, with Idempotent-Replayed: true; " +
				"the same key with another body gets 422; a repeat while the first request with the key is still unanswered gets 409. " +
				"At most 255 printable ASCII characters." + map[bool]string{false: " Remembered in memory by this process for the route's idempotency_ttl.", true: ""}[durable],
			Schema: &huma.Schema{Type: "string", MaxLength: intPtr(maxIdempotencyKey)},
		}},
		RequestBody: body,
		Responses:   map[string]*huma.Response{},
	}
	if rt.IsDurable() {
		op.Parameters = append(op.Parameters, &huma.Param{
			Name: "Callback-Url", In: "header",
			Description: "Once the message is finished, its summary is POSTed to this URL. Only hosts in server.callback_hosts " +
				"are honoured; any other URL gets 422.",
			Schema: &huma.Schema{Type: "string", Format: "uri"},
		})
	}
	type answerCode struct {
		code int
		desc string
	}
	var codes []answerCode
	switch {
	case !waits:
		codes = []answerCode{{http.StatusAccepted, "Accepted and durably stored; the steps run in the background."}}
	case respond == config.RespondAll:
		codes = []answerCode{
			{http.StatusOK, "Every required step succeeded."},
			{http.StatusMultiStatus, "Some required steps succeeded."},
			{http.StatusBadGateway, "No required step succeeded."},
		}
	default:
		codes = []answerCode{
			{http.StatusOK, "Every listed step succeeded."},
			{http.StatusBadGateway, "A listed step failed."},
		}
	}
	if waits && durable {
		codes = append(codes, answerCode{http.StatusAccepted, "The route's deadline passed first: the message is stored and its steps go on; its Location tells how it ends."})
	}
	for _, c := range codes {
		schema := answer
		d := c.desc
		if rt.Response != nil && c.code != http.StatusAccepted {
			// The route shapes its own answer with a response template.
			schema = &huma.Schema{Description: "The route's response template, rendered over the steps' answers."}
			d += " The body is shaped by the route's response template."
		}
		r := &huma.Response{
			Description: d,
			Content:     map[string]*huma.MediaType{"application/json": {Schema: schema}},
			Headers: map[string]*huma.Param{
				"Idempotent-Replayed": {Description: "\"true\" on the answer to a repeat of an Idempotency-Key.", Schema: &huma.Schema{Type: "string", Enum: []any{"true"}}},
			},
		}
		if durable {
			r.Headers["Location"] = &huma.Param{Description: "The message: /v1/messages/{id}.", Schema: &huma.Schema{Type: "string"}}
		}
		op.Responses[strconv.Itoa(c.code)] = r
	}
	errs := []int{400, 409, 413, 422, 500, 503}
	if s.auth.enabled() {
		errs = append(errs, 401, 403)
	}
	problemResponses(api, op, errs...)
	api.OpenAPI().AddOperation(op)
}

// documentPlain adds the endpoints served outside huma to the document.
func (s *server) documentPlain(api huma.API) {
	reg := api.OpenAPI().Components.Schemas
	status := &huma.Schema{Type: "object", Required: []string{"status"}, Properties: map[string]*huma.Schema{"status": {Type: "string"}}}
	sources := reg.Schema(reflect.TypeFor[sourceList](), true, "SourceList")
	for _, d := range []struct {
		id, path, summary string
		tag               string
		content           map[string]*huma.MediaType
		problems          []int
	}{
		{"healthz", "/healthz", "Liveness: 200 while the process serves.", "operations",
			map[string]*huma.MediaType{"application/json": {Schema: status}}, nil},
		{"readyz", "/readyz", "Readiness: 200 when the engine accepts messages, else 503.", "operations",
			map[string]*huma.MediaType{"application/json": {Schema: status}}, []int{503}},
		{"metrics", "/metrics", "Prometheus metrics (admin).", "operations",
			map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}, []int{401, 403}},
		{"openapi", "/openapi.json", "This document (admin).", "operations",
			map[string]*huma.MediaType{"application/openapi+json": {Schema: &huma.Schema{Type: "object"}}}, []int{401, 403}},
		{"list-sources", "/v1/sources", "List broker sources: each one's state, lag and in-flight count.", "config",
			map[string]*huma.MediaType{"application/json": {Schema: sources}}, []int{401, 403}},
	} {
		op := &huma.Operation{
			OperationID: d.id, Method: http.MethodGet, Path: d.path, Summary: d.summary,
			Tags:      []string{d.tag},
			Responses: map[string]*huma.Response{"200": {Description: "OK", Content: d.content}},
		}
		problemResponses(api, op, d.problems...)
		api.OpenAPI().AddOperation(op)
	}
}

func intPtr(i int) *int { return &i }
