package config

import (
	"errors"
	"strings"

	"github.com/tandem-run/tandem/internal/route"
)

// Spec returns the route as the route compiler reads it (route.Compile).
// The step graph and the templates are route's to check and compile.
func (r *Route) Spec() route.Spec {
	s := route.Spec{Name: r.Name, Saga: r.Saga, Steps: make([]route.StepSpec, 0, len(r.Steps))}
	for _, st := range r.Steps {
		if st == nil {
			st = &Step{}
		}
		ss := route.StepSpec{
			Name: st.Name, After: st.After, Required: st.IsRequired(), NoCompensateUnknown: !st.CompensatesUnknown(),
			Call: route.Call{Target: st.Target, Method: st.Method, Body: st.Body, Headers: st.Headers, Query: st.Query, Path: st.Path},
		}
		if c := st.Compensate; c != nil {
			ss.Compensate = &route.Call{Target: c.Target, Method: c.Method, Body: c.Body, Headers: c.Headers, Query: c.Query, Path: c.Path}
		}
		s.Steps = append(s.Steps, ss)
	}
	if r.Response != nil {
		s.Response = &route.ResponseSpec{Status: r.Response.Status, Body: r.Response.Body}
	}
	return s
}

// compileRoute asks the route compiler to check route r (at path p): its
// step graph and its templates. Each problem is reported at the line of
// the value it names; a value that came from ${env:} or ${file:} is
// never shown.
func (v *validator) compileRoute(p string, r *Route) {
	_, err := route.Compile(r.Spec())
	if err == nil {
		return
	}
	var ps route.Problems
	if !errors.As(err, &ps) {
		v.errf(p, "%v", err)
		return
	}
	for _, pr := range ps {
		full := joinPath(p, pr.Path...)
		msg := pr.Msg
		if v.c.interpolated[full] {
			switch {
			case pr.Template:
				msg = "invalid template in an interpolated value (a secret must not hold {{)"
			case pr.Quoted != "":
				msg = strings.Replace(msg, pr.Quoted, "(interpolated value)", 1)
			}
		}
		v.errf(full, "%s", msg)
	}
}
