package route

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/tandem-run/tandem/internal/config"
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

// Compile compiles a validated route. Errors name the step and template.
func Compile(r *config.Route) (*Plan, error) {
	if r == nil {
		return nil, errors.New("compile route: no route")
	}
	p := &Plan{Name: r.Name, Saga: r.Saga, byName: map[string]*Step{}}
	for _, sc := range r.Steps {
		if sc == nil {
			continue
		}
		s := &Step{
			Name: sc.Name, Target: sc.Target, Method: sc.Method, After: slices.Clone(sc.After),
			Required: sc.IsRequired(), Upstream: r.Upstream(sc.Name),
		}
		if _, dup := p.byName[s.Name]; dup {
			return nil, fmt.Errorf("route %s: duplicate step %q", r.Name, s.Name)
		}
		if err := s.compile(r.StepScope(sc.Name), sc.Body, sc.Headers, sc.Query, sc.Path); err != nil {
			return nil, fmt.Errorf("route %s step %s: %w", r.Name, sc.Name, err)
		}
		p.Steps = append(p.Steps, s)
		p.byName[s.Name] = s
	}
	if err := p.graph(); err != nil {
		return nil, fmt.Errorf("route %s: %w", r.Name, err)
	}
	if r.Saga {
		for i, sc := range r.Steps {
			if sc == nil || sc.Compensate == nil {
				continue
			}
			fs := p.Steps[i]
			c := sc.Compensate
			cs := &Step{
				Name: record.CompensationStep(fs.Name), Target: c.Target, Method: c.Method,
				Compensates: fs.Name, Level: fs.Level, Upstream: fs.Upstream, Downstream: fs.Downstream,
			}
			if err := cs.compile(r.CompensateScope(fs.Name), c.Body, c.Headers, c.Query, c.Path); err != nil {
				return nil, fmt.Errorf("route %s step %s compensate: %w", r.Name, fs.Name, err)
			}
			fs.Compensation = cs
			p.byName[cs.Name] = cs
			p.Compensations = append(p.Compensations, cs)
		}
		// Deepest first; a stable sort keeps config order within a level
		// reversed, the order a person reads "undo the last first" in.
		slices.Reverse(p.Compensations)
		slices.SortStableFunc(p.Compensations, func(a, b *Step) int { return b.Level - a.Level })
	}
	if r.Response != nil {
		resp, err := compileResponse(r)
		if err != nil {
			return nil, fmt.Errorf("route %s response: %w", r.Name, err)
		}
		p.Response = resp
	}
	return p, nil
}

// Step returns the forward step or compensation with that name; nil when
// there is none.
func (p *Plan) Step(name string) *Step { return p.byName[name] }

// graph fills levels and downstream sets; it fails on unknown steps and
// cycles (which validation reports first).
func (p *Plan) graph() error {
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var visit func(s *Step) error
	visit = func(s *Step) error {
		switch state[s.Name] {
		case done:
			return nil
		case active:
			return fmt.Errorf("dependency cycle through step %q", s.Name)
		}
		state[s.Name] = active
		s.Level = 0
		for _, a := range s.After {
			dep := p.byName[a]
			if dep == nil {
				return fmt.Errorf("step %s: unknown step %q in after", s.Name, a)
			}
			if err := visit(dep); err != nil {
				return err
			}
			s.Level = max(s.Level, dep.Level+1)
		}
		state[s.Name] = done
		return nil
	}
	for _, s := range p.Steps {
		if err := visit(s); err != nil {
			return err
		}
	}
	for _, s := range p.Steps {
		for len(p.Levels) <= s.Level {
			p.Levels = append(p.Levels, nil)
		}
		p.Levels[s.Level] = append(p.Levels[s.Level], s)
		for _, u := range s.Upstream {
			up := p.byName[u]
			up.Downstream = append(up.Downstream, s.Name)
		}
	}
	for _, s := range p.Steps {
		slices.Sort(s.Downstream)
	}
	return nil
}

// compile compiles one call's templates.
func (s *Step) compile(sc *template.Scope, body any, headers, query map[string]string, path string) error {
	var errs []error
	reads := map[string]bool{}
	note := func(rs []string) {
		for _, r := range rs {
			reads[r] = true
		}
	}
	switch b := body.(type) {
	case nil:
		s.forward = true
	case string:
		t, err := template.CompileString(b, sc)
		if err != nil {
			errs = append(errs, fmt.Errorf("body: %w", err))
			break
		}
		if t.Expression() {
			// Exactly one expression: its typed value, as JSON.
			v, err := template.CompileValue(b, sc)
			if err != nil {
				errs = append(errs, fmt.Errorf("body: %w", err))
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
			errs = append(errs, fmt.Errorf("body: %w", err))
			break
		}
		s.body = v
		note(v.Reads())
	}
	compileFields := func(what string, m map[string]string, canonical bool) []field {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		out := make([]field, 0, len(m))
		for _, k := range names {
			t, err := template.CompileString(m[k], sc)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", what, k, err))
				continue
			}
			note(t.Reads())
			name := k
			if canonical {
				name = http.CanonicalHeaderKey(k)
			}
			out = append(out, field{name: name, value: t})
		}
		return out
	}
	s.headers = compileFields("header", headers, true)
	s.query = compileFields("query", query, false)
	if path != "" {
		t, err := template.CompileString(path, sc)
		if err != nil {
			errs = append(errs, fmt.Errorf("path: %w", err))
		} else {
			s.path = t
			note(t.Reads())
		}
	}
	for r := range reads {
		s.Reads = append(s.Reads, r)
	}
	slices.Sort(s.Reads)
	return errors.Join(errs...)
}

// Forward reports whether the step sends the inbound body unchanged (it
// has no body template).
func (s *Step) Forward() bool { return s.forward }
