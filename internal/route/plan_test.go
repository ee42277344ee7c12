package route_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/route"
	"github.com/tandem-run/tandem/internal/route/template"
)

// load parses a config of targets t1..t3 and the given routes.
func load(t *testing.T, routes string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
targets:
  t1: { url: "http://127.0.0.1:1/base/" }
  t2: { url: "http://127.0.0.1:2/x?fixed=1" }
  t3: { url: "http://127.0.0.1:3" }
routes:
`+routes), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func compile(t *testing.T, routes string) *route.Plan {
	t.Helper()
	p, err := route.Compile(load(t, routes).Routes[0].Spec())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func names(steps []*route.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

const diamond = `
  - name: r
    path: /r
    saga: true
    steps:
      - { name: a, target: t1, compensate: { target: t3 } }
      - { name: b, target: t1, after: [a], compensate: { target: t3 } }
      - { name: c, target: t2, after: [a] }
      - { name: d, target: t2, after: [b, c], compensate: { target: t3 } }
      - { name: e, target: t3, compensate: { target: t3 } }
`

func TestGraph(t *testing.T) {
	t.Parallel()
	p := compile(t, diamond)
	t.Run("levels run in parallel", func(t *testing.T) {
		var got []string
		for _, l := range p.Levels {
			got = append(got, strings.Join(names(l), ","))
		}
		if want := []string{"a,e", "b,c", "d"}; !slices.Equal(got, want) {
			t.Errorf("levels %v, want %v", got, want)
		}
	})
	t.Run("upstream and downstream are transitive", func(t *testing.T) {
		d, a := p.Step("d"), p.Step("a")
		if !slices.Equal(d.Upstream, []string{"a", "b", "c"}) || !slices.Equal(a.Downstream, []string{"b", "c", "d"}) {
			t.Errorf("d upstream %v, a downstream %v", d.Upstream, a.Downstream)
		}
	})
	t.Run("compensations in reverse dependency order", func(t *testing.T) {
		got := names(p.Compensations)
		if want := []string{"d.compensate", "b.compensate", "e.compensate", "a.compensate"}; !slices.Equal(got, want) {
			t.Errorf("order %v, want %v", got, want)
		}
		cs := p.Step("b.compensate")
		if cs == nil || cs.Compensates != "b" || cs.Required || p.Step("b").Compensation != cs || cs.Target != "t3" {
			t.Errorf("b.compensate %+v", cs)
		}
		if p.Step("c").Compensation != nil {
			t.Errorf("c has no compensate")
		}
	})
	t.Run("no saga, no compensations", func(t *testing.T) {
		p := compile(t, strings.Replace(diamond, "saga: true", "saga: false", 1))
		if len(p.Compensations) != 0 || p.Step("a.compensate") != nil {
			t.Errorf("compensations %v", names(p.Compensations))
		}
	})
}

func render(t *testing.T, s *route.Step, in *template.Input) *route.Request {
	t.Helper()
	r, err := s.Render(template.NewEnv(in))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRender(t *testing.T) {
	t.Parallel()
	p := compile(t, `
  - name: r
    path: /r
    saga: true
    steps:
      - name: a
        target: t1
      - name: b
        target: t1
        after: [a]
        path: "/items/{{ steps.a.body.id }}"
        query: { q: "{{ request.body.q }}", n: "{{ steps.a.status }}" }
        headers: { x-user: "{{ request.headers['x-user'] }}", X-Static: plain }
        body: { id: "{{ steps.a.body.id }}", note: "a said {{ steps.a.body.id }}" }
        compensate:
          target: t2
          path: "/undo/{{ steps.b.body.ref }}"
          body: "undo {{ steps.b.body.ref }} of {{ steps.a.body.id }}"
`)
	in := &template.Input{
		MessageID: "m-1",
		Body:      []byte(`{"q": "a&b=c"}`),
		Header:    map[string][]string{"X-User": {"u-7"}},
		Steps: map[string]template.Result{
			"a": {Status: 201, Body: []byte(`{"id": "x..y?z#"}`)},
			"b": {Status: 200, Body: []byte(`{"ref": "r 1"}`)},
		},
	}
	t.Run("forward when there is no body", func(t *testing.T) {
		r := render(t, p.Step("a"), in)
		if !r.Forward || r.Body != nil || r.Header != nil {
			t.Errorf("request %+v", r)
		}
	})
	t.Run("every part rendered", func(t *testing.T) {
		r := render(t, p.Step("b"), in)
		if string(r.Body) != `{"id":"x..y?z#","note":"a said x..y?z#"}` {
			t.Errorf("body %s", r.Body)
		}
		if r.Header.Get("X-User") != "u-7" || r.Header.Get("X-Static") != "plain" || r.Header.Get("Content-Type") != "" {
			t.Errorf("headers %v", r.Header)
		}
		u, err := route.URL("http://127.0.0.1:1/base/", r)
		if err != nil {
			t.Fatal(err)
		}
		// The id's "?" and "#" stay inside one path segment.
		if want := "http://127.0.0.1:1/base/items/x..y%3Fz%23?n=201&q=a%26b%3Dc"; u != want {
			t.Errorf("url %s, want %s", u, want)
		}
	})
	t.Run("compensation: text body, own step and upstream", func(t *testing.T) {
		r := render(t, p.Step("b.compensate"), in)
		if string(r.Body) != "undo r 1 of x..y?z#" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("request %q %v", r.Body, r.Header)
		}
		u, _ := route.URL("http://127.0.0.1:2/x?fixed=1", r)
		if u != "http://127.0.0.1:2/x/undo/r%201?fixed=1" {
			t.Errorf("url %s", u)
		}
	})
	t.Run("a header value never carries a line break", func(t *testing.T) {
		bad := *in
		bad.Header = map[string][]string{"X-User": {"u\r\nX-Admin: yes"}}
		_, err := p.Step("b").Render(template.NewEnv(&bad))
		if err == nil || !strings.Contains(err.Error(), "header X-User") || strings.Contains(err.Error(), "X-Admin") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("a missing field names itself", func(t *testing.T) {
		bad := *in
		bad.Steps = map[string]template.Result{"a": {Status: 201, Body: []byte(`{}`)}}
		_, err := p.Step("b").Render(template.NewEnv(&bad))
		if err == nil || !strings.Contains(err.Error(), "steps.a.body.id is missing") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("reads", func(t *testing.T) {
		if r := p.Step("b").Reads; !slices.Equal(r, []string{"a"}) {
			t.Errorf("b reads %v", r)
		}
		if r := p.Step("b.compensate").Reads; !slices.Equal(r, []string{"a", "b"}) {
			t.Errorf("b.compensate reads %v", r)
		}
	})
}

func TestResponse(t *testing.T) {
	t.Parallel()
	p := compile(t, `
  - name: r
    path: /r
    respond: all
    steps: [{ name: a, target: t1 }, { name: b, target: t2 }]
    response:
      status: "{{ steps.a.status == 200 && steps.b.status == 200 ? 200 : 502 }}"
      body: { price: "{{ steps.a.body.price }}", stock: "{{ default(steps.b.body?.count, 0) }}", id: "{{ message.id }}" }
`)
	tests := []struct {
		name     string
		b        template.Result
		wantCode int
		wantBody string
	}{
		{"both answered", template.Result{Status: 200, Body: []byte(`{"count": 3}`)}, 200, `{"id":"m","price":9.5,"stock":3}`},
		{"one failed", template.Result{Status: 503}, 502, `{"id":"m","price":9.5,"stock":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := template.NewEnv(&template.Input{MessageID: "m", Steps: map[string]template.Result{
				"a": {Status: 200, Body: []byte(`{"price": 9.5}`)}, "b": tt.b}})
			code, body, err := p.Response.Render(env)
			if err != nil || code != tt.wantCode || string(body) != tt.wantBody {
				t.Errorf("got %d %s %v", code, body, err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	// Config validation reports these first, with lines; Compile refuses
	// them too, for routes built in code.
	tests := []struct {
		name string
		set  func(a *route.StepSpec)
		want string
	}{
		{"a step not upstream", func(a *route.StepSpec) { a.Body = "{{ steps.b.body }}" }, `step "b" is not in after`},
		{"an unknown name", func(a *route.StepSpec) { a.Headers = map[string]string{"x": "{{ nope }}"} }, "unknown name nope"},
		{"a bad path", func(a *route.StepSpec) { a.Path = "/{{ 1 + }}" }, "path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := route.Spec{Name: "r", Steps: []route.StepSpec{{Name: "a", Call: route.Call{Target: "t1"}}, {Name: "b", Call: route.Call{Target: "t1"}}}}
			tt.set(&r.Steps[0])
			if _, err := route.Compile(r); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ base, path, want string }{
		{"http://h/a", "b", "http://h/a/b"},
		{"http://h/a/", "/b", "http://h/a/b"},
		{"http://h", "/b%2Fc", "http://h/b%2Fc"},
	}
	for _, tt := range tests {
		got, err := route.URL(tt.base, &route.Request{Path: tt.path})
		if err != nil || got != tt.want {
			t.Errorf("URL(%s, %s) = %s %v, want %s", tt.base, tt.path, got, err, tt.want)
		}
	}
	if got, _ := route.URL("http://h/a", &route.Request{Header: http.Header{}}); got != "http://h/a" {
		t.Errorf("nothing to add: %s", got)
	}
}

func TestUpstream(t *testing.T) {
	t.Parallel()
	p := compile(t, `
  - name: r
    path: /r
    saga: true
    steps:
      - { name: a, target: t1 }
      - { name: b, target: t1, after: [a], compensate: { target: t3, body: "{{ steps.a.body }} {{ steps.b.body }}" } }
      - { name: c, target: t1, after: [b] }
      - { name: d, target: t1 }
`)
	if got := p.Step("c").Upstream; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("upstream of c %v", got)
	}
	if got := p.Step("d").Upstream; len(got) != 0 {
		t.Errorf("upstream of d %v", got)
	}
	if got := p.Step("b.compensate").Reads; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("b.compensate reads %v", got)
	}
	spec := route.Spec{Name: "r", Saga: true, Steps: []route.StepSpec{
		{Name: "a", Call: route.Call{Target: "t1"}},
		{Name: "b", After: []string{"a"}, Call: route.Call{Target: "t1"},
			Compensate: &route.Call{Target: "t3", Body: "{{ steps.c.body }}"}},
		{Name: "c", After: []string{"b"}, Call: route.Call{Target: "t1"}},
	}}
	if _, err := route.Compile(spec); err == nil || !strings.Contains(err.Error(), `steps[1].compensate.body: {{ steps.c.body }}: step "c" is not in after`) {
		t.Errorf("a compensation reading a downstream step: %v", err)
	}
}

// TestGraphProblems: Compile reports every problem of the step graph at
// once, each at its place in the spec.
func TestGraphProblems(t *testing.T) {
	t.Parallel()
	step := func(name string, after ...string) route.StepSpec {
		return route.StepSpec{Name: name, After: after, Call: route.Call{Target: "t1"}}
	}
	spec := route.Spec{Name: "r", Steps: []route.StepSpec{
		step("a", "b"), step("b", "c", "c"), step("c", "a"), step("a"), step("e", "e", "chrge"), step("charge"),
	}, Response: &route.ResponseSpec{Status: "2OO"}}
	_, err := route.Compile(spec)
	var ps route.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err %v is not Problems", err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	want := []string{
		`steps[3].name: duplicate step name "a" (also steps[0])`,
		`steps[1].after[1]: step "c" is listed twice`,
		`steps[4].after[0]: step "e" cannot wait on itself`,
		`steps[4].after[1]: unknown step "chrge" (did you mean "charge"?)`,
		`steps[2].after[0]: dependency cycle: a -> b -> c -> a`,
		`response.status: status "2OO" is not an HTTP status (100..599) or a {{ }} template`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := ps[len(ps)-1].Quoted; q != `"2OO"` {
		t.Errorf("quoted %q", q)
	}
	if !strings.HasPrefix(err.Error(), "route r: ") {
		t.Errorf("err %v does not name the route", err)
	}
}
