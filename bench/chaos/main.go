// Command chaos runs tandem as real processes under a randomized, seeded
// schedule of faults, records what every party saw, and checks the
// history (package history) for broken promises:
//
//	go run ./bench/chaos -duration 60s -store both
//	go run ./bench/chaos -seed 4711 -store postgres   # replay a schedule
//
// SQLite runs one `tandem serve` on a file, killed with SIGKILL (and
// stopped with SIGTERM) and restarted on the same file; PostgreSQL runs
// three replicas on one fresh schema of TANDEM_TEST_POSTGRES, each behind
// its own toxiproxy, whose connections are cut or slowed. Every target is
// an HTTP server in this process behind its own toxiproxy (latency past
// tandem's timeout, resets of answers, black holes), and misbehaves on its
// own too (5xx, stalls past the timeout, resets before and after doing the
// work, 429/503 with Retry-After, slow answers). Dead letters are replayed
// through POST /v1/dead-letters/replay. One route fans out, one is a saga.
//
// After the fault phase it heals everything, waits (bounded) for the
// backlog to drain, reads every message through the admin API, and prints
// the counts and every violation with the seed. It exits 1 on a
// violation, 2 when the harness itself failed. It is not part of go test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
)

// options are the command's flags.
type options struct {
	seed     uint64
	duration time.Duration // the fault phase of all stores together
	phase    time.Duration // one store's share
	stores   []string
	rate     float64
	drain    time.Duration
	keep     bool
	verbose  bool
	postgres string
	bin      string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 0, "schedule seed (0: pick one); the same seed replays the same schedule")
	duration := fs.Duration("duration", 60*time.Second, "length of the fault phase, shared by the stores (both: half each)")
	store := fs.String("store", "both", "sqlite, postgres or both")
	rate := fs.Float64("rate", 25, "messages offered per second")
	drainFor := fs.Duration("drain", 60*time.Second, "longest wait for the backlog to drain after the faults")
	keep := fs.Bool("keep", false, "keep the run directory (logs, configs, history.json) and the PostgreSQL schema")
	verbose := fs.Bool("v", false, "print the schedule")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opt := options{seed: *seed, duration: *duration, rate: *rate, drain: *drainFor, keep: *keep, verbose: *verbose,
		postgres: os.Getenv("TANDEM_TEST_POSTGRES")}
	switch *store {
	case "sqlite", "postgres":
		opt.stores = []string{*store}
	case "both":
		opt.stores = []string{"sqlite", "postgres"}
	default:
		fmt.Fprintf(stderr, "chaos: -store must be sqlite, postgres or both, not %q\n", *store)
		return 2
	}
	if opt.duration < 5*time.Second*time.Duration(len(opt.stores)) || opt.rate <= 0 {
		fmt.Fprintln(stderr, "chaos: -duration must give each store at least 5s, and -rate must be positive")
		return 2
	}
	if slices.Contains(opt.stores, "postgres") && opt.postgres == "" {
		fmt.Fprintln(stderr, "chaos: TANDEM_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); use -store sqlite without it")
		return 2
	}
	if opt.seed == 0 {
		opt.seed = 1 + rand.Uint64N(999_999)
	}
	opt.phase = opt.duration / time.Duration(len(opt.stores))
	fmt.Fprintf(stdout, "chaos: seed %d (replay with -seed %d), stores %s, %v of faults each, %.0f msg/s\n",
		opt.seed, opt.seed, strings.Join(opt.stores, "+"), opt.phase, opt.rate)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base, err := os.MkdirTemp("", fmt.Sprintf("tandem-chaos-%d-", opt.seed))
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	opt.bin = filepath.Join(base, "tandem")
	if err := build(ctx, opt.bin); err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	failed, broken := false, false
	for _, st := range opt.stores {
		began := time.Now()
		r, err := runStore(ctx, opt, st, opt.bin, base)
		if err != nil {
			fmt.Fprintf(stderr, "chaos: %s: %v (logs in %s)\n", st, err, filepath.Join(base, st))
			broken = true
			continue
		}
		summarize(stdout, opt, r, time.Since(began))
		if r.report.Failed() || !r.drain.drained {
			failed = true
		}
	}
	switch {
	case broken:
		fmt.Fprintf(stdout, "chaos: seed %d: the harness failed; logs in %s\n", opt.seed, base)
		return 2
	case failed:
		fmt.Fprintf(stdout, "chaos: seed %d: VIOLATIONS; logs and history.json in %s\n", opt.seed, base)
		return 1
	}
	if opt.keep {
		fmt.Fprintf(stdout, "chaos: seed %d: no violation; kept %s\n", opt.seed, base)
	} else {
		_ = os.RemoveAll(base)
		fmt.Fprintf(stdout, "chaos: seed %d: no violation\n", opt.seed)
	}
	return 0
}

// build compiles tandem once, from the module this command belongs to.
func build(ctx context.Context, out string) error {
	mod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
		return errors.New("find the module: run from inside the tandem module")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/tandem")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tandem: %v\n%s", err, b)
	}
	return nil
}

// summarize prints one store's counts and violations.
func summarize(w io.Writer, opt options, r *storeRun, took time.Duration) {
	rep := r.report
	ld := r.load
	fmt.Fprintf(w, "\n== %s (seed %d) — %v\n", r.store, opt.seed, took.Round(time.Second))
	fmt.Fprintf(w, "load:       sent %d, acknowledged %d, given up %d, sent again after a connection error or 503 %d (of which found committed %d), bad answers %d\n",
		ld.sent.Load(), ld.acked.Load(), ld.gaveUp.Load(), ld.retried.Load(), ld.repeated.Load(), ld.bad.Load())
	if t, ok := ld.badText.Load().(string); ok {
		fmt.Fprintf(w, "            last bad answer: %s\n", t)
	}
	fmt.Fprintf(w, "faults:     %d events; kills %d, stops %d, db cuts %d, db latency %d; %s\n",
		r.events, rep.Kills, rep.Stops, rep.DBCuts, rep.DBLatencies, firedList(r.fired))
	fmt.Fprintf(w, "replays:    %d calls, %d dead letters replayed, %d found nothing to replay, %d failed; drain replayed %d\n",
		r.replays.calls, r.replays.ids, r.replays.empty, r.replays.failed, r.drain.replayed)
	if r.replays.last != "" {
		fmt.Fprintf(w, "            last replay error: %s\n", r.replays.last)
	}
	if r.drain.drained {
		fmt.Fprintf(w, "drain:      settled in %v\n", r.drain.took.Round(100*time.Millisecond))
	} else {
		fmt.Fprintf(w, "drain:      NOT settled after %v: %s\n", r.drain.took.Round(100*time.Millisecond), r.drain.left)
	}
	fmt.Fprintf(w, "store:      %d messages: %s\n", r.messages, statusList(rep.MessagesByStatus))
	fmt.Fprintf(w, "targets:    %d requests; %d not counted as an attempt (resent within one, or unrecorded with the sender unhurt); %d stale copies after a 2xx\n",
		rep.Requests, rep.Uncounted, rep.Stale)
	fmt.Fprintf(w, "acknowledged %d, delivered %d, lost %d\n", rep.Acknowledged, rep.Delivered, rep.Lost)
	fmt.Fprintf(w, "duplicates: in crash windows %d, after lost answers %d, outside %d (keys)\n",
		rep.DuplicatesInCrashWindow, rep.DuplicatesLostAnswer, rep.DuplicatesOutside)
	fmt.Fprintf(w, "concurrent doubles %d (%d overlaps with an abandoned request excused)\n", rep.ConcurrentDoubles, rep.ConcurrentExcused)
	fmt.Fprintf(w, "sagas:      %d messages, %d compensated, %d compensations of an unknown outcome; saga violations %d\n",
		rep.SagaMessages, rep.SagaCompensated, rep.CompensatedUnknown, rep.SagaViolations)
	fmt.Fprintf(w, "two messages for one key %d\n", rep.TwoMessagesForOneKey)
	if len(rep.Violations) == 0 {
		fmt.Fprintf(w, "%s: seed %d: 0 violations\n", r.store, opt.seed)
		return
	}
	byKind := map[history.Kind][]history.Violation{}
	for _, v := range rep.Violations {
		byKind[v.Kind] = append(byKind[v.Kind], v)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "%s: seed %d: %d VIOLATIONS\n", r.store, opt.seed, len(rep.Violations))
	for _, k := range kinds {
		vs := byKind[history.Kind(k)]
		fmt.Fprintf(w, "  %s: %d\n", k, len(vs))
		for i, v := range vs {
			if i == 5 {
				fmt.Fprintf(w, "    … %d more in %s\n", len(vs)-5, filepath.Join(r.dir, "violations.txt"))
				break
			}
			fmt.Fprintf(w, "    %s: %s\n", v.Key, v.Details)
		}
	}
	var b strings.Builder
	for _, v := range rep.Violations {
		b.WriteString(v.String() + "\n")
	}
	_ = os.WriteFile(filepath.Join(r.dir, "violations.txt"), []byte(b.String()), 0o644)
}

func firedList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func statusList(m map[string]int) string { return firedList(m) }
