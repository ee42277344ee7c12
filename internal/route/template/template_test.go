package template_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/route/template"
)

var (
	t0    = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	scope = &template.Scope{Steps: []string{"charge", "reserve"}, Visible: map[string]bool{"charge": true}, Hint: "add it to after"}
)

func input(body string) *template.Input {
	return &template.Input{
		MessageID: "msg-1",
		Body:      []byte(body),
		Header:    map[string][]string{"X-User-Id": {"u-1", "u-2"}, "content-type": {"application/json"}},
		Query:     map[string][]string{"src": {"web"}},
		Steps:     map[string]template.Result{"charge": {Status: 201, Body: []byte(`{"id":"ch_1","amount":12.5}`), Header: map[string][]string{"Location": {"/c/1"}}}},
		Now:       t0,
	}
}

const order = `{"total": 12, "big": 12345678901234567, "price": 0.1, "name": "ann", "email": "Ann@X.com",
	"items": [{"sku": "tent", "qty": 2}, {"sku": "lamp", "qty": 1}], "note": null, "vip": true, "headers": {"x-a": 1}}`

func renderValue(t *testing.T, v any, body string) (string, error) {
	t.Helper()
	tpl, err := template.CompileValue(v, scope)
	if err != nil {
		t.Fatalf("compile %v: %v", v, err)
	}
	b, err := tpl.Render(template.NewEnv(input(body)))
	if err == nil && !json.Valid(b) {
		t.Fatalf("invalid JSON %s", b)
	}
	return string(b), err
}

func TestRenderValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"a number stays a number", "{{ request.body.total }}", `12`},
		{"a big integer keeps its digits", "{{ request.body.big }}", `12345678901234567`},
		{"a float", "{{ request.body.price }}", `0.1`},
		{"arithmetic", "{{ request.body.total * 100 }}", `1200`},
		{"an object stays an object", "{{ request.body.items[0] }}", `{"qty":2,"sku":"tent"}`},
		{"a list", "{{ map(request.body.items, #.sku) }}", `["tent","lamp"]`},
		{"null", "{{ request.body.note }}", `null`},
		{"bool", "{{ request.body.vip }}", `true`},
		{"interpolation makes a string", "total: {{ request.body.total }}", `"total: 12"`},
		{"object in text is JSON", "{{ request.body.items[1] }}!", `"{\"qty\":1,\"sku\":\"lamp\"}!"`},
		{"literals", map[string]any{"a": []any{1, uint64(2), int64(-3), 1.5, true, nil, "x"}}, `{"a":[1,2,-3,1.5,true,null,"x"]}`},
		{"keys sorted", map[string]any{"b": "{{ message.id }}", "a": 1}, `{"a":1,"b":"msg-1"}`},
		{"message id", "{{ message.id }}", `"msg-1"`},
		{"headers: first value, any case", "{{ request.headers['x-user-id'] }}", `"u-1"`},
		{"headers canonical", "{{ request.headers['Content-Type'] }}", `"application/json"`},
		{"a body field named headers keeps its keys", "{{ request.body.headers['x-a'] }}", `1`},
		{"query", "{{ request.query.src }}", `"web"`},
		{"step body", "{{ steps.charge.body.id }}", `"ch_1"`},
		{"step status", "{{ steps.charge.status }}", `201`},
		{"step headers", "{{ steps.charge.headers.location }}", `"/c/1"`},
		{"upper", "{{ upper(request.body.name) }}", `"ANN"`},
		{"lower", "{{ lower(request.body.email) }}", `"ann@x.com"`},
		{"now is the render's clock", "{{ now() }}", `"2026-03-04T05:06:07Z"`},
		{"now has methods", "{{ now().Year() }}", `2026`},
		{"default when missing", "{{ default(request.body.currency, 'EUR') }}", `"EUR"`},
		{"default when null", "{{ default(request.body.note, 'none') }}", `"none"`},
		{"default keeps a value", "{{ default(request.body.total, 0) }}", `12`},
		{"default over a deep path", "{{ default(request.body.a.b.c, 1) }}", `1`},
		{"?? is lenient", "{{ request.body.currency ?? 'USD' }}", `"USD"`},
		{"?. is lenient", "{{ request.body?.missing?.deeper }}", `null`},
		{"negative index", "{{ request.body.items[-1].sku }}", `"lamp"`},
		{"conditional", "{{ request.body.total > 10 ? 'big' : 'small' }}", `"big"`},
		{"}} inside a string", `{{ "}}" + request.body.name }}`, `"}}ann"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderValue(t, tt.v, order)
			if err != nil || got != tt.want {
				t.Errorf("got %s %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestMissingFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tpl, body, want string
	}{
		{"absent key", "{{ request.body.total }}", `{}`, "request.body.total is missing"},
		{"in text too", "Total: {{ request.body.total }}", `{}`, "request.body.total is missing"},
		{"deep", "{{ request.body.a.b }}", `{"a": {}}`, "request.body.a.b is missing"},
		{"parent null", "{{ request.body.a.b }}", `{"a": null}`, "request.body.a.b cannot be read: its parent is null"},
		{"out of range", "{{ request.body.items[3] }}", `{"items": [1]}`, "request.body.items[3] is out of range (the list has 1 items)"},
		{"not an object", "{{ request.body.a.b }}", `{"a": "x"}`, "request.body.a.b cannot be read: its parent is a string"},
		{"non-JSON body is a string", "{{ request.body.a }}", `plain text`, "request.body.a cannot be read: its parent is a string"},
		{"empty body is null", "{{ request.body.a }}", ``, "cannot be read: its parent is null"},
		{"missing header", "{{ request.headers['x-nope'] }}", `{}`, `request.headers["X-Nope"] is missing`},
		{"a failing helper", "{{ upper(request.body.n) }}", `{"n": 1}`, "upper"},
		{"not a JSON number", "{{ request.body.a / 0.0 }}", `{"a": 1}`, "is not a JSON number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderValue(t, map[string]any{"x": []any{tt.tpl}}, tt.body)
			var re *template.RenderError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if re.Path != "x[0]" {
				t.Errorf("path %q", re.Path)
			}
		})
	}
}

// TestNoInjection: a request value is encoded, never spliced, whatever
// it holds, in a value, in text, and in a path.
func TestNoInjection(t *testing.T) {
	t.Parallel()
	evil := `"}, "x": {` + "\n\u2028\x00\\" + `</script>` + "\xff"
	body, _ := json.Marshal(map[string]string{"name": evil})
	tpl := map[string]any{"a": "{{ request.body.name }}", "b": "hi {{ request.body.name }}", "c": []any{"{{ request.body }}"}}
	got, err := renderValue(t, tpl, string(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		A, B string
		C    []map[string]string
		X    any
	}
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	want := strings.ToValidUTF8(evil, "\ufffd")
	if out.A != want || out.B != "hi "+want || out.C[0]["name"] != want || out.X != nil {
		t.Errorf("rendered %s", got)
	}
	p, err := template.CompileString("/users/{{ request.body.name }}", scope)
	if err != nil {
		t.Fatal(err)
	}
	// The evil value holds "/" and "\\": refused in a path.
	if path, err := p.RenderPath(template.NewEnv(input(string(body)))); !errors.Is(err, template.ErrPathTraversal) {
		t.Errorf("path %q %v, want ErrPathTraversal", path, err)
	}
	noSlash := strings.NewReplacer("/", "", "\\", "").Replace(evil)
	body, _ = json.Marshal(map[string]string{"name": noSlash})
	path, err := p.RenderPath(template.NewEnv(input(string(body))))
	if err != nil || strings.Count(path, "/") != 2 || strings.ContainsAny(path, "?#\" \n") {
		t.Errorf("path %q %v", path, err)
	}
}

// TestPathTraversal: a value that would climb out of the path or add a
// segment (plain, percent-encoded once or twice, or through a "/") is
// refused with ErrPathTraversal; ordinary values with dots pass.
func TestPathTraversal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tpl, id string
		bad     bool
	}{
		{"/users/{{ request.body.id }}/profile", "..", true},
		{"/users/{{ request.body.id }}/profile", ".", true},
		{"/users/{{ request.body.id }}/profile", "%2e%2e", true},
		{"/users/{{ request.body.id }}/profile", "%2E.", true},
		{"/users/{{ request.body.id }}/profile", "%252e%252e", true},
		{"/users/{{ request.body.id }}/profile", "a/b", true},
		{"/users/{{ request.body.id }}/profile", "..%2fadmin", true},
		{"/users/{{ request.body.id }}/profile", "a\\b", true},
		{"/users/{{ request.body.id }}", "..", true},
		{"/users/.{{ request.body.id }}", ".", true},
		{"/users/{{ request.body.id }}/profile", "a.b", false},
		{"/users/{{ request.body.id }}/profile", "...", false},
		{"/users/{{ request.body.id }}/profile", "v1.2..3", false},
		{"/users/{{ request.body.id }}/profile", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.tpl+" "+tt.id, func(t *testing.T) {
			p, err := template.CompileString(tt.tpl, scope)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(map[string]string{"id": tt.id})
			got, err := p.RenderPath(template.NewEnv(input(string(body))))
			if tt.bad != errors.Is(err, template.ErrPathTraversal) {
				t.Fatalf("RenderPath = %q, %v; want refused: %v", got, err, tt.bad)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"syntax", map[string]any{"a": "{{ 1 + }}"}, `a: {{ 1 + }}: unexpected token EOF`},
		{"unclosed", "{{ request.body", "unclosed {{"},
		{"empty", "{{ }}", "empty {{ }}"},
		{"unknown root", "{{ reqest.body }}", "unknown name reqest"},
		{"unknown request field", "{{ request.bdy }}", `request has no field "bdy"`},
		{"unknown message field", "{{ message.idd }}", `message has no field "idd"`},
		{"unknown step", "{{ steps.chrge.body }}", `unknown step "chrge" (did you mean "charge"?)`},
		{"a step not in after", "{{ steps.reserve.body }}", `step "reserve" is not in after (directly or through another step): add it to after`},
		{"unknown step field", "{{ steps.charge.bdy }}", `steps.charge has no field "bdy"`},
		{"computed step", "{{ steps[request.body.s] }}", "not a computed index"},
		{"bare steps", "{{ steps }}", "steps alone is not available"},
		{"$env", "{{ $env.steps }}", "$env is not available"},
		{"repeat is disabled", "{{ repeat('x', 3) }}", "repeat"},
		{"too big", "{{ " + strings.Repeat("1 + ", template.MaxNodes) + "1 }}", "exceeds maximum allowed nodes"},
		{"list path", []any{1, map[string]any{"k y": "{{ nope }}"}}, `[1]["k y"]: {{ nope }}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := template.CompileValue(tt.v, scope)
			var es template.Errors
			if !errors.As(err, &es) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestScopeAll(t *testing.T) {
	t.Parallel()
	sc := &template.Scope{Steps: []string{"a", "b"}, All: true}
	v, err := template.CompileValue(map[string]any{"all": "{{ steps }}", "a": "{{ steps.a.status }}"}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.Reads(); len(r) != 2 || r[0] != "*" || r[1] != "a" {
		t.Errorf("reads %v", r)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tpl, want string
		expr      bool
	}{
		{"plain", "plain", false},
		{"{{ request.body.total }}", "12", true},
		{"{{ request.body.note }}", "", true},
		{"{{ request.body.items[0] }}", `{"qty":2,"sku":"tent"}`, true},
		{"n={{ request.body.total }}&m={{ message.id }}", "n=12&m=msg-1", false},
		{" {{ request.body.vip }}", " true", false},
	}
	for _, tt := range tests {
		s, err := template.CompileString(tt.tpl, scope)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Render(template.NewEnv(input(order)))
		if err != nil || got != tt.want || s.Expression() != tt.expr {
			t.Errorf("%q: %q %v expr=%v, want %q expr=%v", tt.tpl, got, err, s.Expression(), tt.want, tt.expr)
		}
	}
}

func TestMemoryBudget(t *testing.T) {
	t.Parallel()
	v, err := template.CompileValue("{{ len(map(1..2000000, #)) }}", scope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Render(template.NewEnv(input(order))); err == nil || !strings.Contains(err.Error(), "memory budget") {
		t.Errorf("err %v", err)
	}
}

// FuzzRender: whatever the request body, a compiled value template renders
// valid JSON or fails with a RenderError; it never panics.
func FuzzRender(f *testing.F) {
	f.Add([]byte(order))
	f.Add([]byte(`{"name": "\"}, \"x\": {"}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"total": 1e400}`))
	tpl, err := template.CompileValue(map[string]any{
		"a": "{{ request.body.name }}", "b": "x {{ request.body }} y", "c": "{{ default(request.body.total, 0) * 2 }}",
		"d": "{{ request.body }}", "e": []any{"{{ request.body?.items?.[0] }}"},
	}, scope)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := tpl.Render(template.NewEnv(&template.Input{Body: body, Now: t0}))
		if err != nil {
			var re *template.RenderError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q for body %q", out, body)
		}
	})
}

// FuzzCompile: any template string compiles or fails cleanly.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"{{ request.body.x }}", "a {{ 'b' }} c", "{{", "}}{{}}", "{{ steps.charge.body }}", `{{ "}}" }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := template.CompileValue(s, scope)
		if err != nil {
			return
		}
		out, err := v.Render(template.NewEnv(input(order)))
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %q from %q", out, s)
		}
	})
}
