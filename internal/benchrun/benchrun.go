package benchrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Figures, by the names --only takes.
var allFigures = []string{"p1", "p2", "p3", "p3b", "p4", "p5", "p6"}

// Options configures a run.
type Options struct {
	// Binary is the tandem executable run as `tandem serve`. Required.
	Binary string
	// Wrk is the wrk executable. Default "wrk" on the PATH.
	Wrk string
	// Duration is the length of each measured run; a figure that
	// alternates baseline and tandem runs each side for Duration, in two
	// halves. Default 10s.
	Duration time.Duration
	// Only lists the figures to measure (p1 p2 p3 p3b p4 p5 p6). Default
	// all but p6, and p6 too when Postgres is set.
	Only []string
	// Conns is wrk's connections (closed loop). Default 64.
	Conns int
	// Threads is wrk's threads. Default 2.
	Threads int
	// Postgres is a PostgreSQL DSN for P6; the run uses a fresh schema in
	// it and drops it at the end. Default none (P6 is skipped).
	Postgres string
	// Rate is the messages/s P3b offers. Default 0.7 × the bare fan-out's
	// rate measured in the same run.
	Rate float64
	// Search makes P3b look for the highest rate with a flat backlog, by
	// bisection (SearchSteps runs of Duration). Default false.
	Search bool
	// SearchSteps bounds the bisection. Default 5.
	SearchSteps int
	// Backlog is how many deliveries P5 parks. Default 100000.
	Backlog int
	// ProfileDir, when set, makes every tandem process write CPU, heap,
	// mutex and block profiles there when it stops
	// (TANDEM_PROFILE_DIR).
	ProfileDir string
	// Keep keeps the run's directory (configs, databases, logs).
	Keep bool
	// Out receives the report; Progress the progress lines. Default
	// os.Stdout and os.Stderr.
	Out, Progress io.Writer

	work string
}

func (o *Options) setDefaults() error {
	if o.Binary == "" {
		return errors.New("bench: no tandem binary")
	}
	if o.Wrk == "" {
		o.Wrk = "wrk"
	}
	p, err := exec.LookPath(o.Wrk)
	if err != nil {
		return fmt.Errorf("bench needs wrk (apt-get install wrk): %w", err)
	}
	o.Wrk = p
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = 64
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	if o.SearchSteps <= 0 {
		o.SearchSteps = 5
	}
	if o.Backlog <= 0 {
		o.Backlog = 100000
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	for _, f := range o.Only {
		if !slices.Contains(allFigures, f) {
			return fmt.Errorf("bench: unknown figure %q (want one of %s)", f, strings.Join(allFigures, ", "))
		}
	}
	if len(o.Only) == 0 {
		o.Only = slices.Clone(allFigures)
		if o.Postgres == "" {
			o.Only = o.Only[:len(o.Only)-1]
		}
	}
	if o.wants("p6") && o.Postgres == "" {
		return errors.New("bench: p6 needs --postgres DSN")
	}
	return nil
}

func (o *Options) wants(f string) bool { return slices.Contains(o.Only, f) }

// Figure is one line of the ratio table.
type Figure struct {
	ID      string  // P1 ... P6
	Name    string  // what is compared
	Tandem  string  // tandem's figure
	Base    string  // the baseline's figure
	Ratio   float64 // tandem / baseline (or the measured value, for P5)
	Unit    string  // "×" or "MiB"
	Goal    string  // the goal, as the issue states it
	Met     bool
	Details []string // extra lines under the table
}

// Report is what a run measured.
type Report struct {
	Started  time.Time
	Figures  []Figure
	Load     [2]string // load average before and after
	Duration time.Duration
}

// run is the state of one run: the sinks, the baselines, the figures so
// far.
type run struct {
	o          *Options
	a, b       *sink
	dead       string // a closed port: targets that never answer
	bareURL    string
	ceilingURL string
	bare       []float64 // every bare fan-out run's requests/s
	p3Rate     float64   // SQLite's end-to-end messages/s, for P6
	rep        *Report
	started    time.Time
}

// Run measures the figures o names and prints the ratio table to o.Out.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "tandem-bench-")
	if err != nil {
		return nil, err
	}
	o.work = work
	if !o.Keep {
		defer os.RemoveAll(work)
	}
	r := &run{o: &o, rep: &Report{Started: time.Now()}, started: time.Now()}
	r.rep.Load[0] = loadAverage()
	if r.a, err = newSink(); err != nil {
		return nil, err
	}
	defer r.a.close()
	if r.b, err = newSink(); err != nil {
		return nil, err
	}
	defer r.b.close()
	if r.dead, err = freePort(); err != nil {
		return nil, err
	}
	r.dead = "http://" + r.dead
	u, srv, err := serve(bareFanOut(r.a.url+"/a", r.b.url+"/b"))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	r.bareURL = u
	u, srv2, err := serve(ceiling())
	if err != nil {
		return nil, err
	}
	defer srv2.Close()
	r.ceilingURL = u

	fmt.Fprintf(o.Out, "tandem bench: %s/%s, %d CPUs, %s per measured run, wrk -t%d -c%d; load average %s\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), o.Duration, o.Threads, o.Conns, r.rep.Load[0])
	if o.Keep {
		fmt.Fprintf(o.Out, "run directory: %s\n", work)
	}
	if err := r.sqlite(ctx); err != nil {
		return r.rep, err
	}
	if o.wants("p6") {
		if err := r.postgres(ctx); err != nil {
			return r.rep, err
		}
	}
	r.rep.Load[1] = loadAverage()
	r.rep.Duration = time.Since(r.started)
	r.rep.Print(o.Out)
	return r.rep, nil
}

// progress prints one progress line: elapsed time, the figure, the step.
func (r *run) progress(fig, format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "[%5.0fs] %-3s %s\n", time.Since(r.started).Seconds(), fig, fmt.Sprintf(format, args...))
}

// bareRate is the mean of every bare fan-out run so far.
func (r *run) bareRate() float64 {
	if len(r.bare) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range r.bare {
		s += v
	}
	return s / float64(len(r.bare))
}

// measureBare runs the bare fan-out for d and records its rate.
func (r *run) measureBare(ctx context.Context, d time.Duration) (loadResult, error) {
	res, err := r.o.wrk(ctx, r.bareURL, d)
	if err == nil {
		r.bare = append(r.bare, res.RPS())
	}
	return res, err
}

// delivered is how many requests both sinks have answered.
func (r *run) delivered() int64 { return r.a.count.Load() + r.b.count.Load() }

// drain waits until the sinks have seen want deliveries more than at
// from, or until limit; it returns how long it waited and whether
// everything arrived.
func (r *run) drain(ctx context.Context, from, want int64, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for {
		if r.delivered()-from >= want {
			return time.Since(start), true
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Print writes the ratio table and the details under it.
func (rep *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n| figure | tandem | baseline | ratio | goal | met |\n| --- | ---: | ---: | ---: | --- | --- |\n")
	for _, f := range rep.Figures {
		met := "not met"
		if f.Met {
			met = "met"
		}
		ratio := fmt.Sprintf("%.2f%s", f.Ratio, f.Unit)
		if f.Unit == "MiB" {
			ratio = fmt.Sprintf("%.0f MiB", f.Ratio)
		}
		fmt.Fprintf(w, "| %s %s | %s | %s | %s | %s | %s |\n", f.ID, f.Name, f.Tandem, f.Base, ratio, f.Goal, met)
	}
	fmt.Fprintln(w)
	for _, f := range rep.Figures {
		for _, d := range f.Details {
			fmt.Fprintf(w, "- %s: %s\n", f.ID, d)
		}
	}
	fmt.Fprintf(w, "\nload average before %s, after %s; the run took %s. Figures on a shared machine are noisy: compare ratios, not absolutes.\n",
		rep.Load[0], rep.Load[1], rep.Duration.Round(time.Second))
}
