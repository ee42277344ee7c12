package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, and that it returns either a
// usable config or well-formed errors, each with a line.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimalBlock))
	if data, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(data)
	}
	for _, tt := range errorCases {
		f.Add([]byte(tt.src))
	}
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte("targets:\n  t: &t {url: 'http://h', <<: [*t]}\n"))
	f.Add([]byte("routes: [{respond: *x}]\n"))
	env := envOf(map[string]string{"A": "x", "URL": "http://127.0.0.1:1/"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(data, "f.yaml", env)
		if err == nil {
			if cfg == nil || len(cfg.Routes) == 0 {
				t.Fatalf("no error and no usable config: %+v", cfg)
			}
			for name, tg := range cfg.Targets {
				if tg == nil || tg.Name != name {
					t.Fatalf("target %q has name %v", name, tg)
				}
			}
			_ = cfg.Redacted()
			return
		}
		if cfg != nil {
			t.Fatalf("config returned along with an error")
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not Errors: %T %v", err, err)
		}
		for _, e := range errs {
			if e.Line < 1 || strings.TrimSpace(e.Msg) == "" {
				t.Fatalf("bad error %+v", e)
			}
			if msg := e.Error(); !strings.HasPrefix(msg, "f.yaml:") {
				t.Fatalf("error %q does not start with the file name", msg)
			}
		}
	})
}

// TestHostileInputsAreBounded checks that alias bombs and deep nesting end
// in an error instead of eating memory.
func TestHostileInputsAreBounded(t *testing.T) {
	t.Parallel()
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		laughs += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	tests := []struct{ name, src, want string }{
		{"alias bomb in a body", minimalBlock + "        body:\n          " + strings.ReplaceAll(laughs, "\n", "\n          ") + "\n", "document is too large"},
		{"deep nesting", minimalBlock + "        body: " + strings.Repeat("[", 3000) + strings.Repeat("]", 3000) + "\n", "too deeply nested"},
		{"self-referencing alias", minimalBlock + "        body: &x [*x]\n", "alias refers to itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse([]byte(tt.src), "t.yaml", noEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %.300v, want %q", err, tt.want)
			}
		})
	}
}
