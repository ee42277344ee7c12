package route

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/route/template"
)

// Plan is one route compiled.
type Plan struct {
	// Name is the route's name.
	Name string
	// Saga is true when failures are compensated.
	Saga bool
	// Steps are the forward steps, in config order.
	Steps []*Step
	// Levels groups the forward steps by depth: level 0 waits for
	// nothing, a step's level is one more than its deepest after step.
	// Steps of one level never wait for each other and run in parallel.
	Levels [][]*Step
	// Compensations are the saga's compensation steps in the order they
	// run: a compensation comes after those of every step that waits on
	// its step. Empty unless Saga.
	Compensations []*Step
	// Response shapes a waiting caller's answer; nil for the standard one.
	Response *Response

	byName map[string]*Step
}

// Step is one call of a target: a forward step, or a compensation.
type Step struct {
	// Name is the step's name; "<step>.compensate" for a compensation.
	Name string
	// Target names the target called.
	Target string
	// Method is the HTTP method; "" means the target's.
	Method string
	// After lists the steps this one waits for (forward steps only).
	After []string
	// Required is false when a failure neither counts against the
	// message nor triggers compensation. Always false for compensations.
	Required bool
	// NoCompensateUnknown: see StepSpec.
	NoCompensateUnknown bool
	// Upstream is every step this one waits for, directly or not, sorted.
	Upstream []string
	// Downstream is every step that waits for this one, directly or not,
	// sorted.
	Downstream []string
	// Level is the step's depth in the graph (see Plan.Levels); for a
	// compensation, its step's level.
	Level int
	// Compensation is the step that undoes this one in a saga; nil when
	// there is none.
	Compensation *Step
	// Compensates names the step a compensation undoes; "" on forward
	// steps.
	Compensates string
	// Reads names the steps whose results the templates read, sorted.
	Reads []string

	body    *template.Value  // JSON body; nil with text or forward
	text    *template.String // text body
	forward bool             // no body: send the inbound body unchanged
	headers []field
	query   []field
	path    *template.String
}

// field is one header or query parameter template.
type field struct {
	name  string
	value *template.String
}

// Scope hints, shown when a template reads a step it may not.
const (
	stepScopeHint       = "a step reads only the steps in its after (add it there to use its answer)"
	compensateScopeHint = "a compensation reads its own step and the steps that step waits for"
)

// Compile checks and compiles a route: its step graph and every template.
// It reports every problem at once, as Problems wrapped with the route's
// name; config validation reports the same Problems with file and line.
// A step's templates may read the steps it waits for, directly or not; a
// compensation's its own step and those; a response's every step.
func Compile(r Spec) (*Plan, error) {
	ps := &problems{}
	g := newGraph(r.Steps, ps)
	p := &Plan{Name: r.Name, Saga: r.Saga, byName: map[string]*Step{}}
	for j, sc := range r.Steps {
		s := &Step{
			Name: sc.Name, Target: sc.Target, Method: sc.Method, After: slices.Clone(sc.After),
			Required: sc.Required, NoCompensateUnknown: sc.NoCompensateUnknown, Upstream: g.upstream[j], Downstream: g.downstream[j], Level: g.level[j],
		}
		sp := at(nil, "steps", j)
		s.compile(ps, sp, &template.Scope{Steps: g.names, Visible: visible(s.Upstream), Hint: stepScopeHint}, sc.Call)
		p.Steps = append(p.Steps, s)
		if _, dup := p.byName[s.Name]; !dup {
			p.byName[s.Name] = s
		}
		if c := sc.Compensate; c != nil {
			// Checked in every route; part of the plan in a saga only.
			cs := &Step{
				Name: record.CompensationStep(s.Name), Target: c.Target, Method: c.Method,
				Compensates: s.Name, Level: s.Level, Upstream: s.Upstream, Downstream: s.Downstream,
			}
			sc := &template.Scope{Steps: g.names, Visible: visible(s.Upstream, s.Name), Hint: compensateScopeHint}
			cs.compile(ps, at(sp, "compensate"), sc, *c)
			if r.Saga {
				s.Compensation = cs
				p.byName[cs.Name] = cs
				p.Compensations = append(p.Compensations, cs)
			}
		}
	}
	if r.Response != nil {
		p.Response = compileResponse(ps, r.Response, &template.Scope{Steps: g.names, All: true})
	}
	if len(ps.list) > 0 {
		return nil, fmt.Errorf("route %s: %w", r.Name, ps.list)
	}
	for _, s := range p.Steps {
		for len(p.Levels) <= s.Level {
			p.Levels = append(p.Levels, nil)
		}
		p.Levels[s.Level] = append(p.Levels[s.Level], s)
	}
	// Deepest first; a stable sort keeps config order within a level
	// reversed, the order a person reads "undo the last first" in.
	slices.Reverse(p.Compensations)
	slices.SortStableFunc(p.Compensations, func(a, b *Step) int { return b.Level - a.Level })
	return p, nil
}

// Step returns the forward step or compensation with that name; nil when
// there is none.
func (p *Plan) Step(name string) *Step { return p.byName[name] }

// compile compiles one call's templates, reporting problems at p.
func (s *Step) compile(ps *problems, p []any, sc *template.Scope, c Call) {
	reads := map[string]bool{}
	note := func(rs []string) {
		for _, r := range rs {
			reads[r] = true
		}
	}
	switch b := c.Body.(type) {
	case nil:
		s.forward = true
	case string:
		t, err := template.CompileString(b, sc)
		if err != nil {
			ps.template(at(p, "body"), err)
			break
		}
		if t.Expression() {
			// Exactly one expression: its typed value, as JSON.
			v, err := template.CompileValue(b, sc)
			if err != nil {
				ps.template(at(p, "body"), err)
				break
			}
			s.body = v
		} else {
			s.text = t
		}
		note(t.Reads())
	default:
		v, err := template.CompileValue(b, sc)
		if err != nil {
			ps.template(at(p, "body"), err)
			break
		}
		s.body = v
		note(v.Reads())
	}
	compileFields := func(what string, m map[string]string) []field {
		out := make([]field, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fp := at(p, what, k)
			val := m[k]
			switch {
			case what == "query" && k == "":
				ps.errf(fp, "query parameter name is empty")
			case what == "headers" && !template.HasExpression(val) && badHeaderByte(val) >= 0:
				ps.errf(fp, "header value contains control characters (a trailing newline?)")
				continue
			}
			t, err := template.CompileString(val, sc)
			if err != nil {
				ps.template(fp, err)
				continue
			}
			note(t.Reads())
			name := k
			if what == "headers" {
				name = http.CanonicalHeaderKey(k)
			}
			out = append(out, field{name: name, value: t})
		}
		return out
	}
	s.headers = compileFields("headers", c.Headers)
	s.query = compileFields("query", c.Query)
	if c.Path != "" {
		pp := at(p, "path")
		if strings.ContainsAny(c.Path, "?#") {
			ps.quoted(pp, "path %s must not hold a query or fragment (use query)", c.Path)
		}
		t, err := template.CompileString(c.Path, sc)
		if err != nil {
			ps.template(pp, err)
		} else {
			s.path = t
			note(t.Reads())
		}
	}
	for r := range reads {
		s.Reads = append(s.Reads, r)
	}
	slices.Sort(s.Reads)
}

// Forward reports whether the step sends the inbound body unchanged (it
// has no body template).
func (s *Step) Forward() bool { return s.forward }
