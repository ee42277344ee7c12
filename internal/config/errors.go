package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/token"

	"github.com/tandem-run/tandem/internal/route/template"
)

// Error is one problem in a config file, with where it is.
type Error struct {
	// File is the config file's path ("" when parsed from bytes).
	File string
	// Line and Column are 1-based; Column is 0 when unknown.
	Line, Column int
	// Path is the key path of the offending value, e.g.
	// "routes[0].steps[1].target"; "" for the whole file.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error renders "file:line: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(displayName(e.File))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(max(e.Line, 1)))
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config file, in file order.
type Errors []*Error

// Error joins the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each *Error to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func displayName(file string) string {
	if file == "" {
		return "<input>"
	}
	return file
}

// pos is a place in the YAML source.
type pos struct{ line, col int }

func tokenPos(tk *token.Token) pos {
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{tk.Position.Line, tk.Position.Column}
}

// collector gathers errors and knows where each key path sits in the file.
type collector struct {
	file string
	// index maps a key path to where its key (or sequence item) is written.
	index map[string]pos
	errs  Errors
	// interpolated marks paths whose value came from ${env:} or ${file:};
	// messages must not quote them.
	interpolated map[string]bool
	// raw holds, for each interpolated path, its text as written (with
	// the ${env:NAME} references, never the values).
	raw map[string]string
	// failed marks paths whose value was reported already (a wrong shape,
	// a failed interpolation); later checks skip them and the paths below
	// them, so one mistake is reported once.
	failed map[string]bool
}

func newCollector(file string) *collector {
	return &collector{
		file:         file,
		index:        map[string]pos{},
		interpolated: map[string]bool{},
		raw:          map[string]string{},
		failed:       map[string]bool{},
	}
}

// record remembers where path is written; the first record wins, so an
// explicit key shadows one brought in by a merge key.
func (c *collector) record(path string, p pos) {
	if _, ok := c.index[path]; !ok && p.line > 0 {
		c.index[path] = p
	}
}

// lookup finds where path, or its nearest written ancestor, sits.
func (c *collector) lookup(path string) pos {
	for p := path; ; p = parentPath(p) {
		if at, ok := c.index[p]; ok {
			return at
		}
		if p == "" {
			return pos{line: 1}
		}
	}
}

// pathAt finds the deepest recorded path written at p ("" if none).
func (c *collector) pathAt(p pos) string {
	best := ""
	found := false
	for path, at := range c.index {
		if at != p {
			continue
		}
		if !found || len(path) > len(best) || (len(path) == len(best) && path < best) {
			best, found = path, true
		}
	}
	return best
}

// errf adds an error about the value at path, placed by the index.
func (c *collector) errf(path, format string, args ...any) {
	if c.reported(path) {
		return
	}
	c.addAt(c.lookup(path), path, fmt.Sprintf(format, args...))
}

// reported tells whether path, or a path above it, has failed.
func (c *collector) reported(path string) bool {
	for p := path; ; p = parentPath(p) {
		if c.failed[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// addAt adds an error at an exact source position.
func (c *collector) addAt(p pos, path, msg string) {
	if p.line <= 0 {
		p = c.lookup(path)
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: p.line, Column: p.col, Path: path, Msg: msg})
}

// quote shows a value in a message; one that came from ${env:} or
// ${file:} is shown as written (the reference), never as its value.
func (c *collector) quote(path, v string) string {
	if c.interpolated[path] {
		if r, ok := c.raw[path]; ok {
			return strconv.Quote(r)
		}
		return "(interpolated value)"
	}
	return strconv.Quote(v)
}

// show is quote without quotes around a value written plainly.
func (c *collector) show(path, v string) string {
	if c.interpolated[path] {
		return c.quote(path, v)
	}
	return v
}

// secret reports whether the value at path came from ${env:} or ${file:}.
func (c *collector) secret(path string) bool { return c.interpolated[path] }

// result returns the errors in file order, or nil.
func (c *collector) result() error {
	if len(c.errs) == 0 {
		return nil
	}
	sort.SliceStable(c.errs, func(i, j int) bool {
		a, b := c.errs[i], c.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return c.errs
}

// fromYAML turns an error of the YAML library into an *Error with position.
func (c *collector) fromYAML(err error) {
	var own *Error
	if errors.As(err, &own) {
		e := *own
		e.File = c.file
		if e.Path == "" {
			e.Path = c.pathAt(pos{e.Line, e.Column})
		}
		c.errs = append(c.errs, &e)
		return
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p, msg := syntaxHint(ye.GetToken(), ye.GetMessage())
		var te *yaml.TypeError
		if errors.As(err, &te) && te.SrcType != nil && te.DstType != nil {
			msg = fmt.Sprintf("expected %s, got %s", goTypeWord(te.DstType.Kind().String()), goTypeWord(te.SrcType.Kind().String()))
		}
		var oe *yaml.OverflowError
		if errors.As(err, &oe) {
			msg = fmt.Sprintf("number %s is out of range", oe.SrcNum)
		}
		c.addAt(p, c.pathAt(p), msg)
		return
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: 1, Msg: err.Error()})
}

// syntaxHint places a YAML syntax error on the line that holds the
// mistake and says what is likely wrong, for the messages the YAML
// library words vaguely or places on a neighbouring line.
func syntaxHint(tk *token.Token, msg string) (pos, string) {
	p := tokenPos(tk)
	if tk == nil {
		return p, msg
	}
	next := tk.Next
	switch {
	case msg == "mapping value is not allowed in this context" && next != nil && next.Type == token.MappingValueType:
		// tk is the value before the ":"; the ":" is the mistake.
		if next.Position != nil && next.Position.Line > p.line {
			return tokenPos(next), fmt.Sprintf(`unexpected ":": this line is indented deeper than the key on line %d, so it reads as the rest of that value; indent it like its sibling keys`, p.line)
		}
		return tokenPos(next), fmt.Sprintf(`unexpected ":" after %q: quote the whole value if it holds ": ", or start a nested mapping on its own, indented line`, tk.Value)
	case msg == "',' or '}' must be specified", msg == "',' or ']' must be specified":
		start, end, what := token.MappingStartType, token.MappingEndType, "}"
		if strings.HasSuffix(msg, "']' must be specified") {
			start, end, what = token.SequenceStartType, token.SequenceEndType, "]"
		}
		last := prevContent(tk)
		open := unclosed(last, start, end)
		if last == nil || open == nil {
			return p, msg
		}
		return tokenPos(last), fmt.Sprintf(`missing %q: the %q on line %d is not closed (or a "," is missing before line %d)`, what, open.Value, open.Position.Line, p.line)
	case msg == "value is not allowed in this context" && prevContent(tk) != nil:
		return p, fmt.Sprintf("this key is not indented like the key above it (line %d): the keys of one mapping must line up", prevContent(tk).Position.Line)
	case msg == "value is not allowed in this context. map key-value is pre-defined" && prevContent(tk) != nil:
		prev := prevContent(tk).Position.Line
		if prev < p.line {
			return p, fmt.Sprintf("unexpected key %q: it is indented deeper than the key on line %d, whose value is complete; indent it like its sibling keys", tk.Value, prev)
		}
		return p, fmt.Sprintf("unexpected key %q after a complete value: put it on its own line, indented like its sibling keys", tk.Value)
	case msg == "unexpected key name" && next != nil && next.Type == token.MappingValueType:
		first, _, _ := strings.Cut(tk.Value, " ")
		return p, fmt.Sprintf(`is a ":" missing after %q?`, first)
	case msg == "non-map value is specified":
		return p, fmt.Sprintf(`%q is not a key and value: is a ":" missing after the key?`, tk.Value)
	}
	return p, msg
}

// prevContent is the token before tk, skipping comments.
func prevContent(tk *token.Token) *token.Token {
	t := tk.Prev
	for t != nil && t.Type == token.CommentType {
		t = t.Prev
	}
	if t == nil || t.Position == nil {
		return nil
	}
	return t
}

// unclosed finds the flow "{" or "[" (start) that tk sits in, walking back.
func unclosed(tk *token.Token, start, end token.Type) *token.Token {
	depth := 0
	for t := tk; t != nil; t = t.Prev {
		switch t.Type {
		case end:
			depth++
		case start:
			if depth == 0 {
				if t.Position == nil {
					return nil
				}
				return t
			}
			depth--
		}
	}
	return nil
}

func goTypeWord(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "a mapping"
	}
	return kind
}

// joinKey appends a mapping key to a path: "a.b", or a["odd key"] when the
// key is not a plain word.
func joinKey(path, key string) string { return joinPath(path, key) }

// joinIndex appends a sequence index to a path.
func joinIndex(path string, i int) string { return joinPath(path, i) }

// joinPath appends keys (strings) and indexes (ints) to a path, each
// written the way template.PathString writes it, so a template error's
// path and the config's read alike.
func joinPath(path string, segs ...any) string {
	s := template.PathString(segs)
	if path == "" || s == "" || s[0] == '[' {
		return path + s
	}
	return path + "." + s
}

// parentPath drops the last segment of a path made by joinKey/joinIndex.
func parentPath(p string) string {
	last := 0 // start of the last segment
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			last = i
			i++
		case '[':
			last = i
			if i+1 < len(p) && p[i+1] == '"' {
				q, err := strconv.QuotedPrefix(p[i+1:])
				if err != nil {
					return ""
				}
				i += 1 + len(q) + 1 // the quoted key and "]"
				continue
			}
			for i < len(p) && p[i] != ']' {
				i++
			}
			i++
		default:
			i++
		}
	}
	return p[:last]
}
