package config

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// The YAML decoder hands these types their AST node (NodeUnmarshalerContext),
// so an error inside a value keeps its line. The schema walk in schema.go
// runs the same parse functions first, to report every bad value at once;
// the UnmarshalYAML methods are the decoder's way in.

type aliasesKey struct{}

// withAliases lets UnmarshalYAML resolve an alias node to its anchor.
func withAliases(ctx context.Context, a map[*ast.AliasNode]ast.Node) context.Context {
	return context.WithValue(ctx, aliasesKey{}, a)
}

// resolveNode strips anchors and tags and follows aliases (at most a few
// hops, so a self-referencing alias cannot loop).
func resolveNode(n ast.Node, aliases map[*ast.AliasNode]ast.Node) ast.Node {
	for range 16 {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			t, ok := aliases[x]
			if !ok {
				return nil
			}
			n = t
		default:
			return n
		}
	}
	return nil
}

func aliasesFrom(ctx context.Context) map[*ast.AliasNode]ast.Node {
	a, _ := ctx.Value(aliasesKey{}).(map[*ast.AliasNode]ast.Node)
	return a
}

// nodeError is an error inside one node.
func nodeError(n ast.Node, format string, args ...any) *Error {
	p := pos{}
	if n != nil {
		p = tokenPos(n.GetToken())
	}
	return &Error{Line: p.line, Column: p.col, Msg: fmt.Sprintf(format, args...)}
}

// scalarText returns a scalar node's text and whether it was a string.
func scalarText(n ast.Node) (text string, isString, ok bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true, true
		}
		return x.Value.Value, true, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, false, true
		}
	}
	return "", false, false
}

// nodeKind names a node's kind for messages.
func nodeKind(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// Duration

// UnmarshalYAML decodes "500ms", "2s", "5m", "24h", "7d" or 0.
func (d *Duration) UnmarshalYAML(ctx context.Context, n ast.Node) error {
	v, err := durationNode(resolveNode(n, aliasesFrom(ctx)))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalText decodes the same text as the YAML form, for flags.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func durationNode(n ast.Node) (Duration, *Error) {
	switch n.(type) {
	case nil:
		return 0, nodeError(n, "expected a duration such as \"30s\"")
	case *ast.NullNode:
		return 0, nil
	}
	text, isString, ok := scalarText(n)
	if !ok {
		return 0, nodeError(n, "expected a duration such as \"30s\", got %s", nodeKind(n))
	}
	if !isString {
		if f, err := strconv.ParseFloat(text, 64); err == nil && f == 0 {
			return 0, nil
		}
	}
	d, err := ParseDuration(text)
	if err != nil {
		return 0, nodeError(n, "%s", err.Error())
	}
	return d, nil
}

// ParseDuration parses a duration such as "500ms", "1h30m", "7d" or "0".
// Negative durations and numbers without a unit (other than 0) are errors.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration: write e.g. \"30s\"")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		if f == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %q needs a unit, e.g. \"%ss\" (units: ns, us, ms, s, m, h)", s, t)
	}
	d, err := parseDays(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: write e.g. \"500ms\", \"30s\", \"5m\", \"24h\" or \"7d\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return Duration(d), nil
}

// parseDays is time.ParseDuration that also takes a leading whole number
// of days: "7d", "1d12h".
func parseDays(t string) (time.Duration, error) {
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(t) || t[i] != 'd' {
		return time.ParseDuration(t)
	}
	days, err := strconv.Atoi(t[:i])
	if err != nil || days > math.MaxInt64/int(24*time.Hour) {
		return 0, fmt.Errorf("too many days")
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest := t[i+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 || d+r < d {
			return 0, fmt.Errorf("bad duration after the days")
		}
		d += r
	}
	return d, nil
}

// String renders d in its largest exact unit ("500ms", "30s", "5m", "24h").
func (d Duration) String() string {
	td := time.Duration(d)
	switch {
	case td == 0:
		return "0s"
	case td%time.Hour == 0:
		return strconv.FormatInt(int64(td/time.Hour), 10) + "h"
	case td%time.Minute == 0:
		return strconv.FormatInt(int64(td/time.Minute), 10) + "m"
	case td%time.Second == 0:
		return strconv.FormatInt(int64(td/time.Second), 10) + "s"
	case td%time.Millisecond == 0:
		return strconv.FormatInt(int64(td/time.Millisecond), 10) + "ms"
	}
	return td.String()
}

// MarshalJSON renders d as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// MarshalYAML renders d as a string such as "30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Size

// UnmarshalYAML decodes 512, "64KiB", "1MiB", "10KB".
func (s *Size) UnmarshalYAML(ctx context.Context, n ast.Node) error {
	v, err := sizeNode(resolveNode(n, aliasesFrom(ctx)))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalText decodes the same text as the YAML form, for flags.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func sizeNode(n ast.Node) (Size, *Error) {
	switch n.(type) {
	case nil:
		return 0, nodeError(n, "expected a size such as \"64KiB\"")
	case *ast.NullNode:
		return 0, nil
	}
	text, _, ok := scalarText(n)
	if !ok {
		return 0, nodeError(n, "expected a size such as \"64KiB\", got %s", nodeKind(n))
	}
	if iv, isInt := n.(*ast.IntegerNode); isInt {
		switch v := iv.Value.(type) {
		case int64:
			if v < 0 {
				return 0, nodeError(n, "size %s must not be negative", text)
			}
			return Size(v), nil
		case uint64:
			if v > math.MaxInt64 {
				return 0, nodeError(n, "size %s is too large", text)
			}
			return Size(v), nil
		}
	}
	v, err := ParseSize(text)
	if err != nil {
		return 0, nodeError(n, "%s", err.Error())
	}
	return v, nil
}

var sizeUnits = []struct {
	name string
	mult int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseSize parses a byte count: a whole number with an optional unit,
// B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024),
// case-insensitive, e.g. "512", "64KiB", "10KB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size: write e.g. \"64KiB\"")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q must not be negative", s)
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	digits, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if digits == "" {
		return 0, fmt.Errorf("invalid size %q: write e.g. \"512\", \"64KiB\" or \"1MiB\"", s)
	}
	if strings.HasPrefix(unit, ".") {
		return 0, fmt.Errorf("invalid size %q: use a whole number with a smaller unit (e.g. \"1536KiB\")", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	mult := int64(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range sizeUnits {
		if unit == u.name {
			mult = u.mult
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, strings.TrimSpace(t[i:]))
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(n * mult), nil
}

// Int64 returns s as a byte count.
func (s Size) Int64() int64 { return int64(s) }

// String renders s in its largest exact unit ("1MiB", "10KB", "512B").
func (s Size) String() string {
	n := int64(s)
	if n == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// MarshalJSON renders s as a string such as "64KiB".
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML renders s as a string such as "64KiB".
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// Respond

// RespondSteps is Respond.Mode when the caller waits for a list of steps.
const RespondSteps = "steps"

// UnmarshalYAML decodes "accepted", "all", or a list of step names.
func (r *Respond) UnmarshalYAML(ctx context.Context, n ast.Node) error {
	aliases := aliasesFrom(ctx)
	v, errs := respondNode(resolveNode(n, aliases), aliases, "", nil)
	if len(errs) > 0 {
		return errs[0]
	}
	*r = v
	return nil
}

// respondNode decodes a respond value; record, when set, learns where each
// list item is written.
func respondNode(n ast.Node, aliases map[*ast.AliasNode]ast.Node, path string, record func(string, pos)) (Respond, []*Error) {
	const want = `respond must be "accepted", "all" or a list of step names`
	fail := func(format string, args ...any) []*Error {
		e := nodeError(n, format, args...)
		e.Path = path
		return []*Error{e}
	}
	switch x := n.(type) {
	case nil:
		return Respond{}, fail(want)
	case *ast.NullNode:
		return Respond{}, nil
	case *ast.SequenceNode:
		r := Respond{Mode: RespondSteps, Steps: []string{}}
		var errs []*Error
		for i, item := range x.Values {
			if record != nil {
				record(joinIndex(path, i), nodeStart(item))
			}
			v := resolveNode(item, aliases)
			text, isString, ok := scalarText(v)
			if !ok || !isString {
				e := nodeError(item, "respond list items must be step names, got %s", nodeKind(v))
				e.Path = joinIndex(path, i)
				errs = append(errs, e)
				continue
			}
			r.Steps = append(r.Steps, text)
		}
		return r, errs
	}
	text, isString, ok := scalarText(n)
	if !ok || !isString {
		return Respond{}, fail("%s, got %s", want, nodeKind(n))
	}
	switch text {
	case RespondAccepted, RespondAll:
		return Respond{Mode: text}, nil
	}
	return Respond{}, fail("%s; got %q (for one step write [%s])", want, text, text)
}

// WaitsFor reports whether the caller's answer waits for step.
func (r Respond) WaitsFor(step string) bool {
	switch r.Mode {
	case RespondAll:
		return true
	case RespondSteps:
		for _, s := range r.Steps {
			if s == step {
				return true
			}
		}
	}
	return false
}

// String renders r as "accepted", "all" or "[a, b]".
func (r Respond) String() string {
	if r.Mode == RespondSteps {
		return "[" + strings.Join(r.Steps, ", ") + "]"
	}
	if r.Mode == "" {
		return RespondAccepted
	}
	return r.Mode
}

// MarshalJSON renders r as "accepted", "all" or a list of step names.
func (r Respond) MarshalJSON() ([]byte, error) {
	v, _ := r.MarshalYAML()
	return json.Marshal(v)
}

// MarshalYAML renders r as "accepted", "all" or a list of step names.
func (r Respond) MarshalYAML() (any, error) {
	if r.Mode == RespondSteps {
		if r.Steps == nil {
			return []string{}, nil
		}
		return r.Steps, nil
	}
	return r.String(), nil
}
