package route

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tandem-run/tandem/internal/route/template"
	"github.com/tandem-run/tandem/internal/typo"
)

// Spec is a route as Compile reads it: plain data, filled from the config
// (config.Route.Spec) or built in code.
type Spec struct {
	// Name is the route's name.
	Name string
	// Saga is true when failures are compensated.
	Saga bool
	// Steps are the forward steps, in config order.
	Steps []StepSpec
	// Response shapes a waiting caller's answer; nil for the standard one.
	Response *ResponseSpec
}

// StepSpec is one forward step of a Spec.
type StepSpec struct {
	// Name identifies the step within its route.
	Name string
	// After lists the steps this one waits for.
	After []string
	// Required is false when a failure neither counts against the message
	// nor triggers compensation.
	Required bool
	// NoCompensateUnknown is compensate_unknown: false: a saga leaves this
	// step alone when it ends dead after an attempt of unknown outcome.
	NoCompensateUnknown bool
	// Call is the step's target and templates.
	Call
	// Compensate is the call that undoes the step in a saga; nil for none.
	Compensate *Call
}

// Call is one HTTP call: its target and its templates.
type Call struct {
	// Target names the target called.
	Target string
	// Method is the HTTP method; "" means the target's.
	Method string
	// Body is the body template; nil forwards the inbound body unchanged.
	Body any
	// Headers and Query are string templates by name.
	Headers, Query map[string]string
	// Path is a template appended to the target URL's path.
	Path string
}

// ResponseSpec shapes a waiting caller's answer.
type ResponseSpec struct {
	// Status is a literal HTTP status or a template yielding one.
	Status string
	// Body is a value template; nil for the standard body.
	Body any
}

// Problem is one thing wrong with a Spec.
type Problem struct {
	// Path locates the problem inside the spec in the config's words:
	// "steps", 1, "after", 0 (keys are strings, indexes ints).
	Path []any
	// Msg says what is wrong.
	Msg string
	// Quoted is the value Msg quotes, as strconv.Quote wrote it, so a
	// caller can hide a secret; "" when Msg quotes no value.
	Quoted string
	// Template is true when Msg is a template's own error, which shows
	// the template's text.
	Template bool
}

// Error renders "path: message".
func (p *Problem) Error() string {
	if len(p.Path) == 0 {
		return p.Msg
	}
	return template.PathString(p.Path) + ": " + p.Msg
}

// Problems are every problem found in one Spec, in the order checked.
type Problems []*Problem

// Error joins the problems with "; ".
func (ps Problems) Error() string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return strings.Join(out, "; ")
}

// problems gathers the problems of one Compile.
type problems struct{ list Problems }

// at appends a path to a base path, never sharing the base's array.
func at(base []any, more ...any) []any {
	out := make([]any, 0, len(base)+len(more))
	return append(append(out, base...), more...)
}

func (ps *problems) errf(path []any, format string, args ...any) {
	ps.list = append(ps.list, &Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// quoted adds a problem whose message quotes value v (format has one %s).
func (ps *problems) quoted(path []any, format, v string) {
	q := strconv.Quote(v)
	ps.list = append(ps.list, &Problem{Path: path, Msg: fmt.Sprintf(format, q), Quoted: q})
}

// template adds a template's errors, each at the path of its string.
func (ps *problems) template(path []any, err error) {
	es, ok := err.(template.Errors)
	if !ok {
		ps.errf(path, "%v", err)
		return
	}
	for _, e := range es {
		ps.list = append(ps.list, &Problem{Path: at(path, e.Path...), Msg: e.Msg, Template: true})
	}
}

// withHint adds "did you mean" when a candidate is close to got.
func withHint(msg, got string, candidates []string) string {
	if s := typo.Closest(got, candidates); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg
}
