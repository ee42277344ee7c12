// Command bench builds tandem and runs `tandem bench` on it: the P1–P6
// comparisons of bench/README.md, measured from outside (tandem serve as a
// child process, wrk and a paced client as the load), each figure a ratio
// against a baseline measured in the same run.
//
//	go run ./bench                          # P1–P5 on SQLite, 10s per measured run
//	go run ./bench -only p3b -rate 2000     # one fixed rate: is the backlog flat?
//	go run ./bench -postgres "$TANDEM_TEST_POSTGRES"   # and P6
//
// The old names still work for -only: fanout (p1), accept (p2), e2e (p3,
// p3b), pg (p6; the DSN from -postgres, TANDEM_BENCH_POSTGRES or
// TANDEM_TEST_POSTGRES). It is not part of go test; every load is bounded
// in time and count, and everything runs on 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/internal/benchrun"
)

func main() {
	o := benchrun.Options{Out: os.Stdout, Progress: os.Stderr}
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each measured run")
	only := flag.String("only", "", "figures, comma separated: p1 p2 p3 p3b p4 p5 p6 (or fanout, accept, e2e, pg)")
	flag.StringVar(&o.Postgres, "postgres", "", "PostgreSQL DSN for P6 (default TANDEM_BENCH_POSTGRES, then TANDEM_TEST_POSTGRES, with -only pg)")
	flag.Float64Var(&o.Rate, "rate", 0, "messages/s P3b offers (default 0.7× the bare fan-out)")
	flag.BoolVar(&o.Search, "search", false, "P3b: find the highest rate with a flat backlog (bisection)")
	flag.IntVar(&o.Conns, "conns", 64, "wrk connections")
	flag.IntVar(&o.Backlog, "backlog", 100000, "deliveries P5 parks")
	flag.StringVar(&o.ProfileDir, "profile-dir", "", "write each tandem process's profiles here")
	flag.BoolVar(&o.Keep, "keep", false, "keep the run directory")
	flag.Parse()
	names := map[string][]string{"fanout": {"p1"}, "accept": {"p2"}, "e2e": {"p3", "p3b"}, "pg": {"p6"}}
	for _, f := range strings.Split(*only, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch {
		case f == "":
		case names[f] != nil:
			o.Only = append(o.Only, names[f]...)
		default:
			o.Only = append(o.Only, f)
		}
	}
	if o.Postgres == "" && (*only == "" || strings.Contains(*only, "pg") || strings.Contains(*only, "p6")) {
		for _, env := range []string{"TANDEM_BENCH_POSTGRES", "TANDEM_TEST_POSTGRES"} {
			if v := os.Getenv(env); v != "" && *only != "" {
				o.Postgres = v
				break
			}
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o benchrun.Options) error {
	dir, err := os.MkdirTemp("", "tandem-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.Binary = filepath.Join(dir, "tandem")
	build := exec.Command("go", "build", "-o", o.Binary, "./cmd/tandem")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/tandem: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = benchrun.Run(ctx, o)
	return err
}
