package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/tandem-run/tandem/internal/benchrun"
)

// bench runs the comparison benchmarks against this binary started as
// `tandem serve` child processes, and prints the ratio table.
func (m *Main) bench(ctx context.Context, args []string) error {
	fs := m.newFlags("bench", "bench [--duration D] [--only p1,p2,...] [--postgres DSN] [--rate R] [--search]")
	dur := fs.Duration("duration", 0, "length of each measured run (default 10s)")
	only := fs.String("only", "", "figures to measure, comma separated: p1 p2 p3 p3b p4 p5 p6 (default all; p6 needs --postgres)")
	pg := fs.String("postgres", "", "PostgreSQL DSN for P6 (a fresh schema is created and dropped)")
	rate := fs.Float64("rate", 0, "messages/s P3b offers (default 0.7× the bare fan-out measured in the run)")
	search := fs.Bool("search", false, "P3b: find the highest rate with a flat backlog (bisection, bounded)")
	steps := fs.Int("search-steps", 0, "runs the --search bisection makes (default 5)")
	conns := fs.Int("conns", 0, "wrk connections (default 64)")
	backlog := fs.Int("backlog", 0, "deliveries P5 parks in the backlog (default 100000)")
	wrk := fs.String("wrk", "", "the wrk executable (default wrk on the PATH)")
	bin := fs.String("binary", "", "the tandem executable to measure (default this one)")
	profiles := fs.String("profile-dir", "", "write each tandem process's CPU, heap, mutex and block profiles here")
	keep := fs.Bool("keep", false, "keep the run directory (configs, databases, logs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	o := benchrun.Options{Duration: *dur, Postgres: *pg, Rate: *rate, Search: *search, SearchSteps: *steps, Conns: *conns,
		Backlog: *backlog, Wrk: *wrk, Binary: *bin, ProfileDir: *profiles, Keep: *keep, Out: m.Stdout, Progress: m.Stderr}
	if *only != "" {
		for _, f := range strings.Split(*only, ",") {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
				o.Only = append(o.Only, f)
			}
		}
	}
	if *rate > 0 && len(o.Only) == 0 {
		o.Only = []string{"p3b"}
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find this binary: %w", err)
		}
		o.Binary = exe
	}
	_, err := benchrun.Run(ctx, o)
	return err
}

// startProfiles starts the profiles a bench asked a `tandem serve` for
// (TANDEM_PROFILE_DIR): CPU from now, and mutex and block sampling. The
// returned func stops them and writes cpu.pprof, heap.pprof,
// allocs.pprof, mutex.pprof and block.pprof into the directory.
func startProfiles(dir string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(100_000) // one event per 100µs blocked
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		for _, name := range []string{"heap", "allocs", "mutex", "block"} {
			if w, err := os.Create(filepath.Join(dir, name+".pprof")); err == nil {
				_ = pprof.Lookup(name).WriteTo(w, 0)
				w.Close()
			}
		}
	}, nil
}
