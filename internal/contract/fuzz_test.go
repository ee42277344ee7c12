package contract_test

import (
	"net/http"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/tandem-run/tandem/internal/contract"
)

// FuzzCheck feeds arbitrary body templates and bodies to the load-time and
// run-time checks: they answer, never panic.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{amount: 1, currency: EUR}`, `{items: [{sku: a, qty: "{{ x }}"}]}`, `[1, 2]`, `null`,
		`{amount: "{{ a }} b", currency: [1, {x: y}]}`, `"text"`, `{a: {b: {c: {d: 1}}}}`,
	} {
		f.Add(s)
	}
	var ops []*contract.Operation
	for _, id := range []string{"createCharge", "createRefund", "createReservation"} {
		op, err := contract.Load(sampleDoc, id)
		if err != nil {
			f.Fatal(err)
		}
		ops = append(ops, op)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var v any
		if yaml.Unmarshal([]byte(src), &v) != nil {
			return
		}
		for _, op := range ops {
			_ = op.CheckTemplate(v)
			_ = op.CheckRequest(http.Header{"Content-Type": {"application/json"}}, []byte(src))
			_ = op.CheckResponse(201, http.Header{"Content-Type": {"application/json"}}, []byte(src), false)
		}
	})
}
