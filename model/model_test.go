package model

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/internal/record"
)

const modelFile = "delivery.pml"

func readModel(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(modelFile)
	if err != nil {
		t.Fatalf("read model: %v", err)
	}
	return string(b)
}

// mtypeNames returns the names of the model's mtype declared as name.
func mtypeNames(t *testing.T, src, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`mtype\s*:\s*` + name + `\s*=\s*\{([^}]*)\}`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s declares no mtype:%s", modelFile, name)
	}
	var out []string
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// recordConstants returns the values of the constants of type typ that
// internal/record/record.go declares.
func recordConstants(t *testing.T, typ string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "internal", "record", "record.go"), nil, 0)
	if err != nil {
		t.Fatalf("parse record.go: %v", err)
	}
	var out []string
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			id, ok := vs.Type.(*ast.Ident)
			if !ok || id.Name != typ {
				continue
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("record.go: a %s constant is not a string literal", typ)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("record.go: %v", err)
				}
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("record.go declares no %s constants", typ)
	}
	return out
}

func sameSet(t *testing.T, what string, model, code []string) {
	t.Helper()
	slices.Sort(model)
	slices.Sort(code)
	if !slices.Equal(model, code) {
		t.Errorf("%s: the model has %v, internal/record has %v", what, model, code)
	}
}

// TestStatusNames: the model's delivery and message states are record's.
func TestStatusNames(t *testing.T) {
	t.Parallel()
	src := readModel(t)
	sameSet(t, "delivery states", mtypeNames(t, src, "dstatus"), recordConstants(t, "DeliveryStatus"))
	var msg []string
	for _, n := range mtypeNames(t, src, "mstatus") {
		s, ok := strings.CutPrefix(n, "msg_")
		if !ok {
			t.Errorf("message state %q lacks the msg_ prefix", n)
		}
		msg = append(msg, s)
	}
	sameSet(t, "message states", msg, recordConstants(t, "MessageStatus"))
	for _, n := range mtypeNames(t, src, "dstatus") {
		if !record.DeliveryStatus(n).Valid() {
			t.Errorf("model state %q is not a valid record.DeliveryStatus", n)
		}
	}
}

var (
	markRE   = regexp.MustCompile(`/\*\s*T:\s*(\w+)\s*->\s*(\w+)\s+([\w-]+)\s*\*/`)
	assignRE = regexp.MustCompile(`\bst\[[^\]]+\]\s*=\s*(\w+)`)
)

// modelTransitions returns the transitions the model marks.
func modelTransitions(t *testing.T, src string) map[record.DeliveryTransition]int {
	t.Helper()
	out := map[record.DeliveryTransition]int{}
	for i, line := range strings.Split(src, "\n") {
		marks := markRE.FindAllStringSubmatch(line, -1)
		// Every status change carries its mark, on its line.
		for _, a := range assignRE.FindAllStringSubmatch(line, -1) {
			found := false
			for _, m := range marks {
				found = found || m[2] == a[1]
			}
			if !found {
				t.Errorf("%s:%d: status set to %s without a /* T: from -> %s event */ mark", modelFile, i+1, a[1], a[1])
			}
		}
		for _, m := range marks {
			from := m[1]
			if from == "none" {
				from = ""
			}
			out[record.DeliveryTransition{From: record.DeliveryStatus(from), To: record.DeliveryStatus(m[2]), Event: record.Event(m[3])}] = i + 1
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s marks no transitions", modelFile)
	}
	return out
}

// TestTransitions: the model makes exactly record.DeliveryTransitions.
func TestTransitions(t *testing.T) {
	t.Parallel()
	src := readModel(t)
	model := modelTransitions(t, src)
	code := map[record.DeliveryTransition]bool{}
	for _, tr := range record.DeliveryTransitions {
		code[tr] = true
		if _, ok := model[tr]; !ok {
			t.Errorf("record.DeliveryTransitions has %q -> %q (%s), which the model never makes", tr.From, tr.To, tr.Event)
		}
	}
	for tr, line := range model {
		if !code[tr] {
			t.Errorf("%s:%d: the model makes %q -> %q (%s), which record.DeliveryTransitions lacks", modelFile, line, tr.From, tr.To, tr.Event)
		}
		if !record.CanMove(tr.From, tr.To) {
			t.Errorf("%s:%d: record.CanMove(%q, %q) is false", modelFile, line, tr.From, tr.To)
		}
	}
}

// TestSpin runs check.sh: every property holds on the model, and every
// broken variant is caught. Without spin it is skipped, except in CI
// (CI set), where it fails. It takes about two minutes on two cores.
func TestSpin(t *testing.T) {
	if _, err := exec.LookPath("spin"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("spin is not on PATH; CI must install it (apt-get install -y spin gcc)")
		}
		t.Skip("spin is not on PATH (apt-get install -y spin gcc); the model was not checked")
	}
	if os.Getenv("TANDEM_MODEL_CHECKED") == "1" {
		t.Log("TANDEM_MODEL_CHECKED=1: model/check.sh already ran in this job; not run again")
		return
	}
	if raceEnabled {
		t.Log("built with -race: check.sh runs in the build without it")
		return
	}
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("-short: the spin check takes about two minutes")
	}
	out, err := exec.Command("bash", "check.sh").CombinedOutput()
	t.Logf("check.sh:\n%s", out)
	if err != nil {
		t.Fatalf("check.sh: %v", err)
	}
}
