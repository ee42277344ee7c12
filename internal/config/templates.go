package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/tandem-run/tandem/internal/route/template"
)

// Upstream returns every step that step waits for, directly or through
// other steps, sorted. Unknown names and cycles are tolerated (validation
// reports them).
func (r *Route) Upstream(step string) []string {
	after := make(map[string][]string, len(r.Steps))
	for _, s := range r.Steps {
		if s != nil {
			after[s.Name] = s.After
		}
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		for _, a := range after[name] {
			if !seen[a] {
				seen[a] = true
				visit(a)
			}
		}
	}
	visit(step)
	delete(seen, step)
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Scope hints, shown when a template reads a step it may not.
const (
	stepScopeHint       = "a step reads only the steps in its after (add it there to use its answer)"
	compensateScopeHint = "a compensation reads its own step and the steps that step waits for"
)

// StepScope is what a step's templates may read: the steps it waits for,
// directly or not.
func (r *Route) StepScope(step string) *template.Scope {
	return &template.Scope{Steps: r.stepNames(), Visible: toSet(r.Upstream(step)), Hint: stepScopeHint}
}

// CompensateScope is what a step's compensation may read: the step itself
// and the steps it waits for.
func (r *Route) CompensateScope(step string) *template.Scope {
	vis := toSet(r.Upstream(step))
	vis[step] = true
	return &template.Scope{Steps: r.stepNames(), Visible: vis, Hint: compensateScopeHint}
}

// ResponseScope is what a response template may read: every step.
func (r *Route) ResponseScope() *template.Scope {
	return &template.Scope{Steps: r.stepNames(), All: true}
}

func (r *Route) stepNames() []string {
	out := make([]string, 0, len(r.Steps))
	for _, s := range r.Steps {
		if s != nil && s.Name != "" {
			out = append(out, s.Name)
		}
	}
	return out
}

func toSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// templates compiles every template of route r (at path p), reporting
// each problem at the line of the string that holds it.
func (v *validator) templates(p string, r *Route) {
	for j, s := range r.Steps {
		sp := joinIndex(joinKey(p, "steps"), j)
		sc := r.StepScope(s.Name)
		v.call(sp, sc, s.Body, s.Headers, s.Query, s.Path)
		if c := s.Compensate; c != nil {
			cp := joinKey(sp, "compensate")
			if c.Method != "" {
				v.method(joinKey(cp, "method"), c.Method)
			}
			v.call(cp, r.CompensateScope(s.Name), c.Body, c.Headers, c.Query, c.Path)
		}
	}
	if r.Response != nil {
		rp := joinKey(p, "response")
		sc := r.ResponseScope()
		if st := r.Response.Status; st != "" {
			sp := joinKey(rp, "status")
			if template.HasExpression(st) {
				v.compileString(sp, st, sc)
			} else if n, err := strconv.Atoi(strings.TrimSpace(st)); err != nil || n < 100 || n > 599 {
				v.errf(sp, "status %s is not an HTTP status (100..599) or a {{ }} template", v.c.quote(sp, st))
			}
		}
		if r.Response.Body != nil {
			v.compileValue(joinKey(rp, "body"), r.Response.Body, sc)
		}
	}
}

// call checks one call's templates: body, headers, query and path.
func (v *validator) call(p string, sc *template.Scope, body any, headers, query map[string]string, path string) {
	if body != nil {
		v.compileValue(joinKey(p, "body"), body, sc)
	}
	for _, name := range sortedKeys(headers) {
		hp := joinKey(joinKey(p, "headers"), name)
		val := headers[name]
		if !template.HasExpression(val) {
			if !validHeaderValue(val) {
				v.errf(hp, "header value contains control characters (a trailing newline?)")
			}
			continue
		}
		v.compileString(hp, val, sc)
	}
	for _, name := range sortedKeys(query) {
		qp := joinKey(joinKey(p, "query"), name)
		if name == "" {
			v.errf(qp, "query parameter name is empty")
		}
		v.compileString(qp, query[name], sc)
	}
	if path != "" {
		pp := joinKey(p, "path")
		if strings.ContainsAny(path, "?#") {
			v.errf(pp, "path %s must not hold a query or fragment (use query)", v.c.quote(pp, path))
		}
		v.compileString(pp, path, sc)
	}
}

func (v *validator) compileString(p, s string, sc *template.Scope) {
	if _, err := template.CompileString(s, sc); err != nil {
		v.templateErrors(p, err)
	}
}

func (v *validator) compileValue(p string, val any, sc *template.Scope) {
	if _, err := template.CompileValue(val, sc); err != nil {
		v.templateErrors(p, err)
	}
}

// templateErrors reports a template's errors at the path of each string.
// A string that came from ${env:} or ${file:} is never quoted.
func (v *validator) templateErrors(p string, err error) {
	es, ok := err.(template.Errors)
	if !ok {
		v.errf(p, "%v", err)
		return
	}
	for _, e := range es {
		full := p
		for _, step := range e.Path {
			switch k := step.(type) {
			case int:
				full = joinIndex(full, k)
			case string:
				full = joinKey(full, k)
			}
		}
		if v.c.interpolated[full] {
			v.errf(full, "invalid template in an interpolated value (a secret must not hold {{)")
			continue
		}
		v.errf(full, "%s", e.Msg)
	}
}
