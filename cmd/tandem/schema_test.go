package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSchemaDocs: schema_docs.json holds the doc comment of every config
// field, as internal/config/config.go has it (-update rewrites it).
func TestSchemaDocs(t *testing.T) {
	// Every file of the package: config types live beside their checks
	// (trust.go, cors.go, source.go), not only in config.go.
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "config", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var decls []ast.Decl
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		decls = append(decls, f.Decls...)
	}
	docs := map[string]string{}
	text := func(g *ast.CommentGroup) string {
		if g == nil {
			return ""
		}
		return strings.Join(strings.Fields(g.Text()), " ")
	}
	for _, d := range decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, sp := range gd.Specs {
			ts := sp.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			doc := ts.Doc
			if doc == nil {
				doc = gd.Doc
			}
			if s := text(doc); s != "" {
				docs[ts.Name.Name] = s
			}
			for _, fld := range st.Fields.List {
				s := text(fld.Doc)
				if s == "" {
					s = text(fld.Comment)
				}
				for _, n := range fld.Names {
					if s != "" && n.IsExported() {
						docs[ts.Name.Name+"."+n.Name] = s
					}
				}
			}
		}
	}
	want, err := json.MarshalIndent(docs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile("schema_docs.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want, schemaDocs) {
		t.Error("schema_docs.json is stale: run go test ./cmd/tandem -run SchemaDocs -update")
	}
}

// compileSchema compiles the output of `tandem schema`.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	out, _, err := runCLI(t, nil, "schema")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("tandem.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("tandem.schema.json")
	if err != nil {
		t.Fatalf("compile: %v\n%s", err, out)
	}
	return sch
}

// yamlValue decodes YAML into the plain values a JSON Schema validator
// takes.
func yamlValue(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaValidatesExamples: every example config is valid against the
// schema, and the mistakes tandem refuses are refused by it too.
func TestSchemaValidatesExamples(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(yamlValue(t, src)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	good := `store: { driver: sqlite, retention: { succeeded: 7d, dead: 720h } }
server: { max_body: 1MiB, shutdown_grace: 30s }
targets: { a: { url: "http://h/a", retry: { max_attempts: 3, initial: 200ms } } }
routes: [{ name: r, path: /r, respond: [s], steps: [{ name: s, target: a, body: { n: "{{ request.body.n }}" } }] }]
`
	if err := sch.Validate(yamlValue(t, []byte(good))); err != nil {
		t.Errorf("a good config: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown key":         `targets: { a: { url: "http://h", retyr: {} } }`,
		"bad duration":        `server: { shutdown_grace: soon }`,
		"bad driver":          `store: { driver: mysql }`,
		"step without target": `routes: [{ name: r, path: /r, steps: [{ name: s }] }]`,
		"bad respond":         `routes: [{ name: r, path: /r, respond: sometimes, steps: [] }]`,
		"string concurrency":  `targets: { a: { url: "http://h", concurrency: many } }`,
	} {
		if err := sch.Validate(yamlValue(t, []byte(bad))); err == nil {
			t.Errorf("%s: valid against the schema", name)
		}
	}
	// Keys carry their doc comments, for an editor's hover.
	out, _, _ := runCLI(t, nil, "schema")
	if !strings.Contains(out, "Concurrency caps attempts in flight. Default 32.") {
		t.Error("the schema lacks the field descriptions")
	}
}

// TestCompletion: the scripts name every command and flag; bash completes
// commands, subcommands, flags and flag values.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, _, err := runCLI(t, nil, "completion", sh)
		if err != nil {
			t.Fatalf("%s: %v", sh, err)
		}
		for _, want := range []string{"sample-targets", "idempotency-key", "purge", "base-port"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s script lacks %q", sh, want)
			}
		}
	}
	if _, _, err := runCLI(t, nil, "completion", "tcsh"); exitCode(err) != exitUsage {
		t.Errorf("unknown shell: %v", err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, _, _ := runCLI(t, nil, "completion", "bash")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tandem.bash"), []byte(script), 0o600)
	complete := func(words ...string) string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "-c", `source ./tandem.bash; COMP_WORDS=(`+strings.Join(quoteAll(words), " ")+`); COMP_CWORD=`+
			strconv.Itoa(len(words)-1)+`; _tandem; echo "${COMPREPLY[*]}"`)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"tandem", "sa"}, "sample-targets"},
		{[]string{"tandem", "dlq", "p"}, "purge"},
		{[]string{"tandem", "dlq", "purge", "--ta"}, "--target"},
		{[]string{"tandem", "messages", "list", "--status", "comp"}, "compensated"},
		{[]string{"tandem", "demo", "--example", "or"}, "order"},
		{[]string{"tandem", "send", "--idem"}, "--idempotency-key"},
		{[]string{"tandem", "completion", "f"}, "fish"},
	} {
		if got := complete(tt.words...); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.words, got, tt.want)
		}
	}
}

func quoteAll(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = "'" + w + "'"
	}
	return out
}
