package api

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestProblemIsMatchesItsType(t *testing.T) {
	t.Parallel()
	got := &Problem{Type: TypeIdempotencyConflict, Title: "Unprocessable Entity", Status: 422, Detail: "this key was used"}
	wrapped := fmt.Errorf("send order: %w", got)
	if !errors.Is(got, ErrIdempotencyConflict) || !errors.Is(wrapped, ErrIdempotencyConflict) {
		t.Error("a problem of type idempotency-conflict does not match ErrIdempotencyConflict")
	}
	for _, other := range kinds {
		if other != ErrIdempotencyConflict && errors.Is(got, other) {
			t.Errorf("it also matches %s", other.Type)
		}
	}
	blank := &Problem{Type: "about:blank", Status: 409}
	if errors.Is(blank, &Problem{Type: "about:blank"}) || errors.Is(blank, ErrNotDead) {
		t.Error("an about:blank problem matches a sentinel")
	}
	var p *Problem
	if p.Is(ErrNotDead) || errors.Is(errors.New("x"), ErrNotDead) {
		t.Error("a nil problem or another error matches a sentinel")
	}
}

func TestProblemErrorListsFieldErrors(t *testing.T) {
	t.Parallel()
	p := &Problem{Type: TypeValidation, Title: "Unprocessable Entity", Status: 422, Detail: "validation failed",
		Errors: []*ErrorDetail{
			{Message: `expected value to be one of "accepted, running"`, Location: "query.status", Value: "bogus"},
			nil,
			{Message: "too long", Location: "body.route", Value: strings.Repeat("x", 100)},
		}}
	want := `422 Unprocessable Entity: validation failed; query.status: expected value to be one of "accepted, running" (got "bogus"); body.route: too long`
	if got := p.Error(); got != want {
		t.Errorf("Error() =\n  %s\nwant\n  %s", got, want)
	}
	if got := (&Problem{Status: 404, Title: "Not Found"}).Error(); got != "404 Not Found" {
		t.Errorf("Error() = %q", got)
	}
}

// TestProblemTypesDocumented checks that docs/api.md has a row for every
// problem type, with its status.
func TestProblemTypesDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := map[string]bool{}
	for _, k := range kinds {
		if seen[k.Type] {
			t.Errorf("type %s listed twice", k.Type)
		}
		seen[k.Type] = true
		name := strings.TrimPrefix(k.Type, ProblemTypeBase)
		row := fmt.Sprintf("| `%s` | %d |", name, k.Status)
		if !strings.Contains(doc, row) {
			t.Errorf("docs/api.md lacks the row %q", row)
		}
	}
}

// TestTargetFieldsDocumented checks that the GET /v1/targets section of
// docs/api.md names every field of the answer.
func TestTargetFieldsDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### `GET /v1/targets`")
	if start < 0 {
		t.Fatal("docs/api.md has no GET /v1/targets section")
	}
	section := doc[start:]
	if end := strings.Index(section[1:], "\n#"); end > 0 {
		section = section[:end+1]
	}
	for _, v := range []any{Target{}, Queue{}, Breaker{}, Limiter{}} {
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if !strings.Contains(section, "`"+name+"`") || !strings.Contains(section, `"`+name+`"`) {
				t.Errorf("the targets section lacks %s.%s (%q) in its example or its text", rt.Name(), rt.Field(i).Name, name)
			}
		}
	}
}
