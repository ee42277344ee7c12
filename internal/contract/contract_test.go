package contract_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/contract"
)

// sampleDoc is the real OpenAPI document of the sample APIs.
var sampleDoc = filepath.Join("..", "..", "examples", "sampleapi", "openapi.yaml")

func load(t *testing.T, id string) *contract.Operation {
	t.Helper()
	op, err := contract.Load(sampleDoc, id)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestLoad(t *testing.T) {
	t.Parallel()
	op := load(t, "createCharge")
	if op.Method != http.MethodPost || op.Path != "/charges" || len(op.Hash) != 64 {
		t.Errorf("op %s %s hash %q", op.Method, op.Path, op.Hash)
	}
	_, err := contract.Load(sampleDoc, "createChrage")
	if !errors.Is(err, contract.ErrNoOperation) || !strings.Contains(err.Error(), "createCharge, createRefund, createReservation") {
		t.Errorf("missing operation: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("openapi: 3.0.3\ninfo: {title: x}\npaths: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := contract.Load(bad, "x"); err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("invalid document: %v", err)
	}
	if _, err := contract.Load(filepath.Join(t.TempDir(), "none.yaml"), "x"); err == nil {
		t.Error("a missing file loaded")
	}
}

// yamlValue decodes a body template as the config loader does.
func yamlValue(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheckTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, op, body string
		want           []string // substrings, one per problem, in order
	}{
		{"expressions are not judged", "createCharge", `{amount: "{{ request.body.total }}", currency: "{{ request.body.cur }}"}`, nil},
		{"literals of the right type", "createCharge", `{amount: 12.5, currency: EUR, order: "o-{{ message.id }}"}`, nil},
		{"a literal of the wrong type", "createCharge", `{amount: "twelve", currency: EUR}`, []string{`amount: the value "twelve" is a string, but the contract wants a number`}},
		{"text around an expression is a string", "createCharge", `{amount: "{{ request.body.total }} EUR", currency: EUR}`, []string{"amount: the template makes a string, but the contract wants a number"}},
		{"outside the enum", "createCharge", `{amount: 1, currency: CHF}`, []string{`currency: the value "CHF" is not one of the contract's values ["EUR", "USD", "GBP"]`}},
		{"a required property missing", "createCharge", `{amount: 1}`, []string{`required property "currency" is missing`}},
		{"nested: items of an array", "createReservation", `{items: [{sku: tent, qty: "two"}, {qty: 1}, {sku: lamp, colour: red}]}`, []string{
			"items.0.qty: the value \"two\" is a string, but the contract wants an integer",
			`items.1: required property "sku" is missing`,
			`items.2.colour: property "colour" is not in the contract (additionalProperties: false)`,
		}},
		{"an integer where a number is wanted is fine", "createCharge", `{amount: 3, currency: USD}`, nil},
		{"a number where an integer is wanted", "createReservation", `{items: [{sku: a, qty: 1.5}]}`, []string{"the value 1.5 is a number, but the contract wants an integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := load(t, tt.op).CheckTemplate(yamlValue(t, tt.body))
			if len(got) != len(tt.want) {
				t.Fatalf("problems %+v, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				text := pathString(got[i].Path) + ": " + got[i].Msg
				if !strings.Contains(text, w) {
					t.Errorf("problem %d %q, want %q", i, text, w)
				}
			}
		})
	}
}

func pathString(p []any) string {
	var parts []string
	for _, s := range p {
		switch v := s.(type) {
		case string:
			parts = append(parts, v)
		case int:
			parts = append(parts, strconv.Itoa(v))
		}
	}
	return strings.Join(parts, ".")
}

func TestCheckRequest(t *testing.T) {
	t.Parallel()
	op := load(t, "createCharge")
	h := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name, body, want string
	}{
		{"valid", `{"amount": 12.5, "currency": "EUR", "order": "o1"}`, ""},
		{"a null amount", `{"amount": null, "currency": "EUR"}`, "/amount"},
		{"missing currency", `{"amount": 3}`, "currency"},
		{"amount not above 0", `{"amount": 0, "currency": "EUR"}`, "/amount"},
		{"no body", ``, "requires a request body"},
		{"not JSON", `{"amount": `, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := op.CheckRequest(h, []byte(tt.body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid body refused: %v", err)
				}
				return
			}
			var v *contract.Violation
			if !errors.As(err, &v) || v.Kind != "request" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a request violation naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
		})
	}
}

// TestSampleServicesKeepTheirContract sends requests to the real sample
// services and checks their answers with CheckResponse: the document and
// the services (two independent descriptions of one API) agree.
func TestSampleServicesKeepTheirContract(t *testing.T) {
	t.Parallel()
	pay := httptest.NewServer(sampleapi.Payments())
	defer pay.Close()
	inv := httptest.NewServer(sampleapi.Inventory(sampleapi.NewStock(map[string]int{"tent": 1})))
	defer inv.Close()
	calls := []struct {
		op, url, body string
		status        int
	}{
		{"createCharge", pay.URL + "/charges", `{"amount": 10, "currency": "EUR", "order": "o1"}`, 201},
		{"createCharge", pay.URL + "/charges", `{"currency": "EUR"}`, 422},
		{"createRefund", pay.URL + "/refunds", `{"charge": "ch_1"}`, 201},
		{"createReservation", inv.URL + "/reservations", `{"items": [{"sku": "tent", "qty": 1}]}`, 201},
		{"createReservation", inv.URL + "/reservations", `{"items": [{"sku": "tent", "qty": 1}]}`, 409},
	}
	for _, c := range calls {
		resp, err := http.Post(c.url, "application/json", bytes.NewBufferString(c.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d", c.op, resp.StatusCode, c.status)
		}
		if err := load(t, c.op).CheckResponse(resp.StatusCode, resp.Header, body, false); err != nil {
			t.Errorf("%s %d: the sample service breaks its contract: %v", c.op, resp.StatusCode, err)
		}
	}
}

func TestCheckResponse(t *testing.T) {
	t.Parallel()
	op := load(t, "createCharge")
	h := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string
	}{
		{"declared and valid", 201, h, `{"id": "ch_1", "amount": 1, "currency": "EUR"}`, ""},
		{"an undeclared status", 200, h, `{}`, "status 200 is not declared by operation createCharge (declared: 201, 422)"},
		{"a body that breaks the schema", 201, h, `{"id": "x_1", "amount": 1, "currency": "EUR"}`, "status 201: /id"},
		{"a missing property", 201, h, `{"id": "ch_1"}`, "status 201"},
		{"an undeclared content type", 201, http.Header{"Content-Type": {"text/html"}}, `<p>hi</p>`, `content type "text/html" is not declared`},
		{"no body", 201, h, ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := op.CheckResponse(tt.status, tt.header, []byte(tt.body), false)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid answer flagged: %v", err)
				}
				return
			}
			var v *contract.Violation
			if !errors.As(err, &v) || v.Kind != "response" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a response violation with %q", err, tt.want)
			}
		})
	}
}

// TestOpenAPI30 checks a 3.0 document too (nullable, no 2020 keywords).
func TestOpenAPI30(t *testing.T) {
	t.Parallel()
	doc := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /notes:
    put:
      operationId: putNote
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [text]
              properties:
                text: {type: string, maxLength: 5}
                tag: {type: string, nullable: true}
      responses:
        "2XX": {description: ok}
        default: {description: error}
`
	file := filepath.Join(t.TempDir(), "notes.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	op, err := contract.Load(file, "putNote")
	if err != nil {
		t.Fatal(err)
	}
	if ps := op.CheckTemplate(yamlValue(t, `{text: hi, tag: null}`)); len(ps) != 0 {
		t.Errorf("nullable: %+v", ps)
	}
	if err := op.CheckRequest(nil, []byte(`{"text": "too long"}`)); err == nil || !strings.Contains(err.Error(), "/text") {
		t.Errorf("maxLength: %v", err)
	}
	if err := op.CheckResponse(204, nil, nil, false); err != nil {
		t.Errorf("2XX: %v", err)
	}
	if err := op.CheckResponse(500, nil, nil, false); err != nil {
		t.Errorf("default: %v", err)
	}
}

func TestCheckRequestContentType(t *testing.T) {
	t.Parallel()
	op := load(t, "createCharge")
	// Without a Content-Type, JSON is taken as JSON (tandem sends it so).
	if err := op.CheckRequest(nil, []byte(`{"amount": 1, "currency": "EUR"}`)); err != nil {
		t.Errorf("JSON without a content type: %v", err)
	}
	if err := op.CheckRequest(nil, []byte(`amount=1`)); err == nil || !strings.Contains(err.Error(), "takes only JSON") {
		t.Errorf("text to a JSON-only operation: %v", err)
	}
	if err := op.CheckRequest(http.Header{"Content-Type": {"text/csv"}}, []byte(`1,EUR`)); err == nil || !strings.Contains(err.Error(), `content type "text/csv" is not one the operation accepts`) {
		t.Errorf("an undeclared content type: %v", err)
	}
}
