package template

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Input is what a render may read: the message and the results of the
// steps the template reads.
type Input struct {
	MessageID string
	// Body is the inbound body: JSON becomes request.body's value, other
	// text a string, an empty body null.
	Body []byte
	// Header and Query are the inbound headers and query. Templates see
	// each name's first value; header names are canonical
	// (request.headers["x-user"] reads X-User).
	Header map[string][]string
	Query  map[string][]string
	// Steps holds step results by step name. A template reads only the
	// steps it names (Reads); others may be left out.
	Steps map[string]Result
	// Now is what now() returns. Default time.Now().
	Now time.Time
}

// Result is one step's answer as templates see it.
type Result struct {
	Status int                 // HTTP status; 0 when no answer came
	Body   []byte              // decoded like Input.Body
	Header map[string][]string // first value per name
}

// Env is the data of one render, decoded once, on the first expression
// that needs it, and shared by every template rendered with it: a step
// that only forwards the inbound body never decodes anything. It is not
// safe for concurrent use.
type Env struct {
	in   *Input
	vars map[string]any
	vm   vm.VM
}

// NewEnv prepares in for rendering; decoding waits for the first
// expression.
func NewEnv(in *Input) *Env {
	return &Env{in: in}
}

func (env *Env) decode() {
	in := env.in
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	steps := make(map[string]any, len(in.Steps))
	for name, r := range in.Steps {
		steps[name] = map[string]any{
			"body":    DecodeBody(r.Body),
			"status":  r.Status,
			"headers": firstValues(r.Header, true),
		}
	}
	env.vars = map[string]any{
		identReq: map[string]any{
			"body":    DecodeBody(in.Body),
			"headers": firstValues(in.Header, true),
			"query":   firstValues(in.Query, false),
		},
		identMsg:   map[string]any{"id": in.MessageID},
		identSteps: steps,
		varNow:     now.UTC(),
	}
	env.vm.MemoryBudget = MemoryBudget
}

// run evaluates one expression.
func (env *Env) run(e *expression) (any, error) {
	if env.vars == nil {
		env.decode()
	}
	return env.vm.Run(e.prog, env.vars)
}

func firstValues(h map[string][]string, canonical bool) map[string]any {
	out := make(map[string]any, len(h))
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if canonical {
			k = http.CanonicalHeaderKey(k)
		}
		if _, dup := out[k]; !dup {
			out[k] = vs[0]
		}
	}
	return out
}

// DecodeBody turns a body into a template value: JSON into maps, lists,
// strings, booleans, nil and numbers (int when whole and in range, else
// float64), any other text into a string, and an empty body into nil.
func DecodeBody(b []byte) any {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return string(b) // not JSON, or JSON followed by more
	}
	return numbers(v)
}

// numbers replaces json.Number in v with int or float64, in place.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil && i >= math.MinInt && i <= math.MaxInt {
				return int(i)
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return s // out of float64's range: keep the digits as text
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}
