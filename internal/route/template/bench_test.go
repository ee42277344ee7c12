package template_test

import (
	"testing"

	"github.com/tandem-run/tandem/internal/route/template"
)

// benchBody is the order example's charge and reservation bodies in one.
var benchBody = map[string]any{
	"amount":   "{{ request.body.total }}",
	"currency": "{{ default(request.body.currency, 'EUR') }}",
	"order":    "{{ message.id }}",
	"charge":   "{{ steps.charge.body.id }}",
	"items":    "{{ request.body.items }}",
	"note":     "order {{ message.id }} for {{ upper(request.body.name) }}",
	"fixed":    map[string]any{"source": "tandem", "v": 2},
}

// BenchmarkRender renders a six-expression body against a decoded
// message: the cost per template once the env is built.
func BenchmarkRender(b *testing.B) {
	tpl, err := template.CompileValue(benchBody, scope)
	if err != nil {
		b.Fatal(err)
	}
	env := template.NewEnv(input(order))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		if buf, err = tpl.AppendJSON(buf[:0], env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderWithEnv adds decoding the message and one step result,
// which a worker does once per delivery.
func BenchmarkRenderWithEnv(b *testing.B) {
	tpl, err := template.CompileValue(benchBody, scope)
	if err != nil {
		b.Fatal(err)
	}
	in := input(order)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tpl.Render(template.NewEnv(in)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile is the load-time cost of the same body.
func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := template.CompileValue(benchBody, scope); err != nil {
			b.Fatal(err)
		}
	}
}
