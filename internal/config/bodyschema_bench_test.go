package config

import (
	"encoding/json"
	"testing"
)

// BenchmarkCheckBody measures a route's schema check of a typical order
// body against the baseline every JSON route pays already (json.Valid):
//
//	go test ./internal/config -run '^$' -bench CheckBody
func BenchmarkCheckBody(b *testing.B) {
	cfg, err := parse([]byte(`targets:
  t: { url: "http://127.0.0.1:9/" }
routes:
  - name: a
    path: /a
    schema:
      type: object
      required: [sku, qty, customer]
      properties:
        sku: { type: string, pattern: "^[A-Z]{3}-[0-9]+$" }
        qty: { type: integer, minimum: 1 }
        customer: { type: string, format: email }
        lines: { type: array, items: { type: object, required: [n], properties: { n: { type: integer } } } }
    steps: [{ name: s, target: t }]
`), "b.yaml", envOf(nil))
	if err != nil {
		b.Fatal(err)
	}
	r := cfg.Routes[0]
	body := []byte(`{"sku":"ABC-123","qty":2,"customer":"a@example.com","lines":[{"n":1},{"n":2},{"n":3}]}`)
	b.Run("json.Valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.CheckBody(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
