package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// docStep is one command block of docs/first-15-minutes.md, with the
// output block that follows it, if any.
type docStep struct {
	lines      []string // commands, in order
	background string   // "terminal 1" etc.: the block keeps running
	want       string   // the text block after it
	file       string   // a yaml block's file name ("# tandem.yaml")
	body       string   // a yaml block's content
}

// parseDocSteps reads the fenced blocks of a doc page, in order.
func parseDocSteps(doc string) []docStep {
	var steps []docStep
	fence := regexp.MustCompile("(?ms)^```(sh|text|yaml)\n(.*?)^```\n")
	for _, m := range fence.FindAllStringSubmatch(doc, -1) {
		kind, body := m[1], m[2]
		switch kind {
		case "text":
			if len(steps) > 0 {
				steps[len(steps)-1].want = body
			}
		case "yaml":
			first, _, _ := strings.Cut(body, "\n")
			if name, ok := strings.CutPrefix(first, "# "); ok && strings.HasSuffix(name, ".yaml") {
				steps = append(steps, docStep{file: name, body: body})
			}
		case "sh":
			st := docStep{}
			for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
				if t, ok := strings.CutPrefix(l, "# "); ok && strings.HasPrefix(t, "terminal ") {
					st.background = t
					continue
				}
				st.lines = append(st.lines, l)
			}
			steps = append(steps, st)
		}
	}
	return steps
}

// shellWords splits a command line as sh does for plain words and single-
// or double-quoted ones.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// missingOutput returns the first piece of want that got lacks, or "":
// got must hold want's lines in order, where "…" in want stands for any
// text and runs of spaces count as one.
func missingOutput(got, want string) string {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	rest := norm(got)
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		for _, frag := range strings.Split(line, "…") {
			frag = norm(frag)
			if frag == "" {
				continue
			}
			i := strings.Index(rest, frag)
			if i < 0 {
				return frag
			}
			rest = rest[i+len(frag):]
		}
	}
	return ""
}

func wantOutput(t *testing.T, cmd, got, want string) {
	t.Helper()
	if frag := missingOutput(got, want); frag != "" {
		t.Errorf("%s: output lacks %q (in order):\n%s", cmd, frag, got)
	}
}

// TestFirstFifteenMinutes follows docs/first-15-minutes.md step by step,
// as a newcomer would: each command runs (in-process, in a fresh folder)
// and must succeed with the output the page shows. Commands the page runs
// in another terminal run in the background until the end. The fixed
// ports of the page (9001.., 8080) are swapped for free ones.
func TestFirstFifteenMinutes(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "docs", "first-15-minutes.md"))
	if err != nil {
		t.Fatal(err)
	}
	base := freeBase(t, 11) // ten sample APIs, then the gateway
	gateway := base + 10
	doc := string(src)
	for i := 8; i >= 1; i-- {
		doc = strings.ReplaceAll(doc, fmt.Sprintf("127.0.0.1:900%d", i), fmt.Sprintf("127.0.0.1:%d", base+i-1))
	}
	doc = strings.ReplaceAll(doc, "127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", gateway))
	steps := parseDocSteps(doc)
	if len(steps) < 8 {
		t.Fatalf("only %d steps in the page", len(steps))
	}
	t.Chdir(t.TempDir())
	env := map[string]string{"TANDEM_SERVER": fmt.Sprintf("http://127.0.0.1:%d", gateway)}
	ctx, cancel := context.WithCancel(context.Background())
	var running []chan error
	defer func() {
		cancel()
		for _, done := range running {
			if err := <-done; err != nil {
				t.Errorf("a background command ended with %v", err)
			}
		}
	}()
	lastID := ""
	for _, st := range steps {
		if st.file != "" {
			if err := os.WriteFile(st.file, []byte(st.body), 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, line := range st.lines {
			if strings.HasPrefix(line, "go install ") {
				continue // needs the network; TestReleaseBuild builds the binary
			}
			args := shellWords(line)
			if len(args) == 0 || args[0] != "tandem" {
				t.Fatalf("a step that is not a tandem command: %q", line)
			}
			args = args[1:]
			for i, a := range args {
				if a == "<id>" {
					if lastID == "" {
						t.Fatalf("%q: no id printed before it", line)
					}
					args[i] = lastID
				}
			}
			if len(args) > 0 && args[0] == "sample-targets" {
				args = append(args, "--base-port", fmt.Sprint(base))
			}
			if st.background != "" {
				out := &syncBuffer{}
				done := make(chan error, 1)
				running = append(running, done)
				go func() {
					m := &Main{Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }}
					done <- m.Run(ctx, args)
				}()
				switch args[0] {
				case "serve":
					waitFor(t, 15*time.Second, "tandem serve answers /healthz", func() bool {
						resp, err := http.Get(env["TANDEM_SERVER"] + "/healthz")
						if err != nil {
							return false
						}
						resp.Body.Close()
						return resp.StatusCode == http.StatusOK
					})
				case "sample-targets":
					waitFor(t, 10*time.Second, "the sample APIs serve", func() bool { return strings.Contains(out.String(), "Serving until Ctrl-C") })
				}
				if st.want != "" {
					wantOutput(t, line, out.String(), st.want)
				}
				continue
			}
			var out string
			var cerr error
			if args[0] == "messages" && len(args) > 1 && args[1] == "show" || args[0] == "dlq" && len(args) > 1 && args[1] == "list" {
				// The deliveries run in the background: wait until they
				// are final, as a reader would run the command again.
				waitFor(t, 15*time.Second, line+" shows the final state", func() bool {
					out, _, cerr = runCLI(t, env, args...)
					return cerr == nil && (st.want == "" || missingOutput(out, st.want) == "")
				})
			} else {
				out, _, cerr = runCLI(t, env, args...)
			}
			if cerr != nil {
				t.Fatalf("%s: %v\n%s", line, cerr, out)
			}
			t.Logf("$ tandem %s\n%s", strings.Join(args, " "), out)
			if st.want != "" && line == st.lines[len(st.lines)-1] {
				wantOutput(t, line, out, st.want)
			}
			if id := uuidRE.FindString(out); id != "" {
				lastID = id
			}
		}
	}
}
