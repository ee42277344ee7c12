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
// operation is registered.
func openAPIHandler(api huma.API) (http.Handler, error) {
	oapi := api.OpenAPI()
	if oapi.Components.SecuritySchemes == nil {
		oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	oapi.Components.SecuritySchemes["bearer"] = &huma.SecurityScheme{
		Type: "http", Scheme: "bearer",
		Description: "An API key from auth.keys. With no keys configured the admin API answers loopback clients only.",
	}
	documentPlain(api)
	spec, err := json.Marshal(oapi)
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/openapi+json")
		_, _ = w.Write(spec)
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

// documentRoute adds a configured route to the OpenAPI document. The route
// is served by the ingest handler, not by huma.
func documentRoute(api huma.API, rt *config.Route) {
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
	if respond == "steps" {
		respond = "steps " + strings.Join(rt.Respond.Steps, ", ")
	}
	op := &huma.Operation{
		OperationID: "route-" + rt.Name,
		Method:      method,
		Path:        rt.Path,
		Summary:     "Route " + rt.Name,
		Description: fmt.Sprintf("Sends the request through route %s (respond: %s). "+
			"A JSON content type must carry valid JSON; other content types are taken as opaque bytes.", rt.Name, respond),
		Tags: []string{"routes"},
		Parameters: []*huma.Param{{
			Name: "Idempotency-Key", In: "header",
			Description: "A repeat with the same key returns the first message's answer (with Idempotent-Replayed: true); " +
				"the same key with another body gets 422; a repeat while the first request with the key is still unanswered gets 409. " +
				"At most 255 printable ASCII characters.",
			Schema: &huma.Schema{Type: "string", MaxLength: intPtr(maxIdempotencyKey)},
		}},
		RequestBody: &huma.RequestBody{
			Description: "Any body; JSON is checked when the content type says JSON.",
			Content: map[string]*huma.MediaType{
				"application/json":         {Schema: &huma.Schema{}},
				"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			},
		},
		Responses: map[string]*huma.Response{},
		Security:  []map[string][]string{{"bearer": {}}},
	}
	if rt.IsDurable() {
		op.Parameters = append(op.Parameters, &huma.Param{
			Name: "Callback-Url", In: "header",
			Description: "Once the message is finished, its summary is POSTed to this URL. Only hosts in server.callback_hosts " +
				"are honoured; any other URL gets 422.",
			Schema: &huma.Schema{Type: "string", Format: "uri"},
		})
	}
	for code, desc := range map[int]string{
		http.StatusAccepted:    "Accepted and durably stored (respond: accepted), or a waiting caller's deadline passed.",
		http.StatusOK:          "Every awaited step succeeded.",
		http.StatusMultiStatus: "Some required steps succeeded (respond: all).",
		http.StatusBadGateway:  "No awaited step succeeded.",
	} {
		schema := answer
		if rt.Response != nil && code != http.StatusAccepted {
			// The route shapes its own answer with a response template.
			schema = &huma.Schema{Description: "The route's response template, rendered over the steps' answers."}
			desc += " The body is shaped by the route's response template."
		}
		op.Responses[strconv.Itoa(code)] = &huma.Response{
			Description: desc,
			Content:     map[string]*huma.MediaType{"application/json": {Schema: schema}},
		}
	}
	problemResponses(api, op, 400, 401, 403, 409, 413, 422, 500, 503)
	api.OpenAPI().AddOperation(op)
}

// documentPlain adds the endpoints served outside huma to the document.
func documentPlain(api huma.API) {
	status := &huma.Schema{Type: "object", Properties: map[string]*huma.Schema{"status": {Type: "string"}}}
	for _, d := range []struct {
		id, path, summary string
		content           map[string]*huma.MediaType
		problems          []int
	}{
		{"healthz", "/healthz", "Liveness: 200 while the process serves.",
			map[string]*huma.MediaType{"application/json": {Schema: status}}, nil},
		{"readyz", "/readyz", "Readiness: 200 when the engine accepts messages, else 503.",
			map[string]*huma.MediaType{"application/json": {Schema: status}}, []int{503}},
		{"metrics", "/metrics", "Prometheus metrics (admin).",
			map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}, []int{401, 403}},
	} {
		op := &huma.Operation{
			OperationID: d.id, Method: http.MethodGet, Path: d.path, Summary: d.summary,
			Tags:      []string{"operations"},
			Responses: map[string]*huma.Response{"200": {Description: "OK", Content: d.content}},
		}
		problemResponses(api, op, d.problems...)
		api.OpenAPI().AddOperation(op)
	}
}

func intPtr(i int) *int { return &i }
