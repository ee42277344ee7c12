// Package template compiles and renders tandem's request templates: a
// step's body, headers, query and path, a compensation's call, and a
// route's response.
//
// A template is a YAML value. Strings in it may hold {{ expression }}
// parts, written in expr-lang (github.com/expr-lang/expr) over
// request.body, request.headers, request.query, message.id and
// steps.<name>.body|status|headers, with the helpers now(), upper(),
// lower() and default(x, y) besides expr's own builtins.
//
// Invariants:
//
//   - A rendered value template is always one valid JSON value. A string
//     that is exactly one {{ expression }} becomes the expression's typed
//     value, encoded by this package; text around {{ }} makes a JSON
//     string. A value from a request is only ever encoded, never spliced,
//     so it cannot add keys or close a string.
//   - Everything that can be checked without a message is checked at
//     compile time: syntax, names (request, message, steps and their
//     fields), unknown steps, and steps the template may not read (Scope).
//   - Reading a field that is missing (an absent key, an index out of
//     range, a field of null) is an error at render time, unless it sits
//     inside default(x, y), on the left of ??, or in an optional chain
//     (a?.b). An error fails that one render; it never panics.
//   - Expressions are bounded: at most MaxNodes nodes at compile time, and
//     expr's VM memory budget (MemoryBudget) at run time. repeat() is
//     disabled, since its output is sized by a request value.
//   - A Value or String is immutable after Compile and safe for
//     concurrent use; an Env is used by one goroutine at a time.
package template
