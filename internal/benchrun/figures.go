package benchrun

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// drainLimit bounds every wait for the backlog.
const drainLimit = 3 * time.Minute

// sqlite measures P1–P5 against one `tandem serve` on SQLite.
func (r *run) sqlite(ctx context.Context) error {
	o := r.o
	c, err := startChild(ctx, o, filepath.Join(o.work, "sqlite"), storeSpec{"sqlite", filepath.Join(o.work, "sqlite", "bench.db")},
		r.a.url, r.b.url, r.dead, nil)
	if err != nil {
		return err
	}
	defer c.stop()
	// Warm both sides: connections, the page cache, the Go runtime.
	r.progress("", "warming up")
	warm := min(o.Duration/4, 2*time.Second)
	if _, err := o.wrk(ctx, r.bareURL, warm); err != nil {
		return err
	}
	if _, err := o.wrk(ctx, c.url+"/fan", warm); err != nil {
		return err
	}
	steps := []struct {
		id string
		fn func(context.Context, *child) error
	}{
		{"p1", r.p1}, {"p4", r.p4}, {"p2", r.p2}, {"p3", r.p3}, {"p3b", r.p3b}, {"p5", r.p5},
	}
	for _, s := range steps {
		if !o.wants(s.id) && !(s.id == "p3" && o.wants("p6")) {
			continue
		}
		if err := s.fn(ctx, c); err != nil {
			return fmt.Errorf("%s: %w", s.id, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// alternate runs the baseline and tandem in turn, each twice for half of
// the run's duration (A B A B), so drift in the machine's load hits both
// alike. between runs before each tandem half.
func (r *run) alternate(ctx context.Context, fig, base, tandem string, baseIsBare bool, c *child) (b, t loadResult, cpu float64, err error) {
	half := r.o.Duration / 2
	for i := range 2 {
		r.progress(fig, "baseline %d/2 (%s)", i+1, half)
		var res loadResult
		if baseIsBare {
			res, err = r.measureBare(ctx, half)
		} else {
			res, err = r.o.wrk(ctx, base, half)
		}
		if err != nil {
			return
		}
		b = combine(b, res)
		r.progress(fig, "tandem %d/2 (%s)", i+1, half)
		before := c.cpuSeconds()
		res, err = r.o.wrk(ctx, tandem, half)
		if err != nil {
			return
		}
		cpu += c.cpuSeconds() - before
		t = combine(t, res)
	}
	return
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func rowOf(r loadResult) string {
	return fmt.Sprintf("%.0f/s (p50 %s, p99 %s, %d errors)", r.RPS(), fmtDur(r.P50), fmtDur(r.P99), r.Errors)
}

// p1: durable: false, respond: all against the bare stdlib fan-out.
func (r *run) p1(ctx context.Context, c *child) error {
	b, t, cpu, err := r.alternate(ctx, "P1", "", c.url+"/fan", true, c)
	if err != nil {
		return err
	}
	tp, p99 := ratio(t.RPS(), b.RPS()), ratio(float64(t.P99), float64(b.P99))
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P1", Name: "sync fan-out (durable: false, respond: all) vs bare stdlib fan-out",
		Tandem: rowOf(t), Base: rowOf(b), Ratio: tp, Unit: "×", Goal: "≥ 1.0×, p99 ≤ 1.2×",
		Met:     tp >= 1.0 && p99 <= 1.2,
		Details: []string{fmt.Sprintf("p99 ratio %.2f×; tandem CPU per request %s", p99, perReq(cpu, t.Requests))},
	})
	return nil
}

func perReq(cpu float64, n int) string {
	if n == 0 {
		return "–"
	}
	return fmtDur(time.Duration(cpu / float64(n) * float64(time.Second)))
}

// p4: durable, respond: all (wait for both deliveries) against the bare
// fan-out.
func (r *run) p4(ctx context.Context, c *child) error {
	from := r.delivered()
	b, t, cpu, err := r.alternate(ctx, "P4", "", c.url+"/wait", true, c)
	if err != nil {
		return err
	}
	_ = from
	tp := ratio(t.RPS(), b.RPS())
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P4", Name: "durable respond: all vs bare fan-out",
		Tandem: rowOf(t), Base: rowOf(b), Ratio: tp, Unit: "×", Goal: "≥ 0.5×", Met: tp >= 0.5,
		Details: []string{fmt.Sprintf("tandem CPU per request %s", perReq(cpu, t.Requests))},
	})
	return nil
}

// p2: durable accept (respond: accepted, SQLite, fsync on) with the
// workers delivering, against the HTTP ceiling. Before each tandem half
// the backlog of the one before has drained, so both halves start alike.
func (r *run) p2(ctx context.Context, c *child) error {
	half := r.o.Duration / 2
	var b, t loadResult
	var drains, stats []string
	for i := range 2 {
		r.progress("P2", "ceiling %d/2 (%s)", i+1, half)
		res, err := r.o.wrk(ctx, r.ceilingURL, half)
		if err != nil {
			return err
		}
		b = combine(b, res)
		r.progress("P2", "tandem accepts %d/2 (%s)", i+1, half)
		from := r.delivered()
		before := c.readCommits()
		res, err = r.o.wrk(ctx, c.url+"/orders", half)
		if err != nil {
			return err
		}
		stats = append(stats, c.readCommits().since(before))
		t = combine(t, res)
		r.progress("P2", "draining %d deliveries", 2*res.Requests)
		took, ok := r.drain(ctx, from, 2*int64(res.Requests), drainLimit)
		drains = append(drains, fmt.Sprintf("%s%s", took.Round(100*time.Millisecond), map[bool]string{false: " (not drained)"}[ok]))
	}
	tp := ratio(t.RPS(), b.RPS())
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P2", Name: "durable accept (SQLite, fsync on, workers delivering) vs HTTP ceiling",
		Tandem: rowOf(t), Base: rowOf(b), Ratio: tp, Unit: "×", Goal: "≥ 0.40×", Met: tp >= 0.4,
		Details: []string{fmt.Sprintf("backlog drained after each tandem half in %v; store while accepting: %s", drains, strings.Join(stats, "; "))},
	})
	return nil
}

// e2e accepts on the given URLs (closed loop, wrk's connections split
// between them) for the run's duration, waits until every accepted
// message reached both sinks, and returns messages delivered to both per
// second over the whole time, load plus drain.
func (r *run) e2e(ctx context.Context, fig string, cs ...*child) (float64, string, error) {
	urls := make([]string, len(cs))
	cpu0 := 0.0
	for i, c := range cs {
		urls[i] = c.url
		cpu0 += c.cpuSeconds()
	}
	from := r.delivered()
	start := time.Now()
	type out struct {
		res loadResult
		err error
	}
	ch := make(chan out, len(urls))
	conns := r.o.Conns
	for _, u := range urls {
		o := *r.o
		o.Conns = max(1, conns/len(urls))
		o.Threads = max(1, min(o.Threads, o.Conns))
		go func() {
			res, err := o.wrk(ctx, u+"/orders", r.o.Duration)
			ch <- out{res, err}
		}()
	}
	accepted, errs := 0, 0
	for range urls {
		x := <-ch
		if x.err != nil {
			return 0, "", x.err
		}
		accepted += x.res.Requests
		errs += x.res.Errors
	}
	loadTime := time.Since(start)
	r.progress(fig, "draining %d deliveries", 2*accepted)
	took, ok := r.drain(ctx, from, 2*int64(accepted), drainLimit)
	total := time.Since(start)
	cpu := -cpu0
	for _, c := range cs {
		cpu += c.cpuSeconds()
	}
	rate := float64(accepted) / total.Seconds()
	detail := fmt.Sprintf("%d accepted in %s (%.0f/s, %d errors), drained %s later%s; %.0f messages/s delivered to both; tandem CPU per message %s",
		accepted, loadTime.Round(100*time.Millisecond), float64(accepted)/loadTime.Seconds(), errs,
		took.Round(100*time.Millisecond), map[bool]string{false: " (NOT drained)"}[ok], rate, perReq(cpu, accepted))
	return rate, detail, nil
}

// p3: end to end, closed loop, against the bare sync fan-out.
func (r *run) p3(ctx context.Context, c *child) error {
	if len(r.bare) == 0 {
		r.progress("P3", "bare fan-out (%s)", r.o.Duration/2)
		if _, err := r.measureBare(ctx, r.o.Duration/2); err != nil {
			return err
		}
	}
	r.progress("P3", "end to end, closed loop (%s)", r.o.Duration)
	before := c.readCommits()
	rate, detail, err := r.e2e(ctx, "P3", c)
	if err != nil {
		return err
	}
	detail += "; store: " + c.readCommits().since(before)
	r.p3Rate = rate
	if !r.o.wants("p3") {
		return nil
	}
	base := r.bareRate()
	x := ratio(rate, base)
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P3", Name: "end to end (accept, deliver to both, drained) vs bare sync fan-out",
		Tandem: fmt.Sprintf("%.0f msg/s", rate), Base: fmt.Sprintf("%.0f req/s", base), Ratio: x, Unit: "×",
		Goal: "≥ 0.75×", Met: x >= 0.75, Details: []string{detail},
	})
	return nil
}

// p5: the tandem process's RSS after the bursts so far, and with
// Backlog deliveries parked (two targets on a closed port, long
// backoff).
func (r *run) p5(ctx context.Context, c *child) error {
	after, peak := c.rss()
	msgs := int64(r.o.Backlog / 2)
	r.progress("P5", "parking %d deliveries", 2*msgs)
	p := &paced{url: c.url + "/parked", workers: r.o.Conns, want: http.StatusAccepted}
	res := p.run(ctx, 10*time.Minute, msgs)
	// Let the workers try (and fail) once and the breakers open.
	time.Sleep(3 * time.Second)
	parked, peak2 := c.rss()
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P5", Name: fmt.Sprintf("memory: RSS with %d deliveries in backlog", 2*res.Requests),
		Tandem: fmt.Sprintf("%.0f MiB", parked), Base: "", Ratio: parked, Unit: "MiB",
		Goal: "≤ 150 MiB; flat in the soak", Met: parked <= 150,
		Details: []string{fmt.Sprintf("RSS after the bursts %.0f MiB (peak %.0f MiB); with the backlog %.0f MiB (peak %.0f MiB); %d messages parked at %.0f/s, %d errors; flatness over time: go run ./bench/soak",
			after, peak, parked, peak2, res.Requests, res.RPS(), res.Errors)},
	})
	return nil
}
