package benchrun

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// rateRun is one fixed-rate run's figures.
type rateRun struct {
	Offered   float64
	Accepted  float64 // answered 202 per second
	Delivered float64 // deliveries per second / 2: messages delivered to both
	Late      int64   // requests the generator sent late (it fell behind)
	Errors    int
	Backlog   []int64 // deliveries accepted and not yet delivered, sampled
	Growth    float64 // backlog: mean of the last quarter minus mean of the second
	Flat      bool
	Drained   time.Duration
}

// Verdict says "flat" or what grew.
func (rr rateRun) Verdict() string {
	switch {
	case rr.Flat:
		return "flat"
	case rr.Growth <= 2*rr.Offered*0.25+500:
		return fmt.Sprintf("backlog flat, but only %.0f of %.0f/s accepted", rr.Accepted, rr.Offered)
	}
	return fmt.Sprintf("growing (%+.0f deliveries)", rr.Growth)
}

func (rr rateRun) String() string {
	n := len(rr.Backlog)
	var picks []string
	for i := 1; i <= 4 && n > 0; i++ {
		picks = append(picks, fmt.Sprint(rr.Backlog[min(n-1, i*n/4-1)]))
	}
	return fmt.Sprintf("offered %.0f/s: accepted %.0f/s, delivered to both %.0f/s, backlog %s (%s), %d late sends, %d errors, drained %s after",
		rr.Offered, rr.Accepted, rr.Delivered, strings.Join(picks, " → "), rr.Verdict(), rr.Late, rr.Errors, rr.Drained.Round(100*time.Millisecond))
}

// fixedRate offers rate messages/s to /orders for d, samples the backlog
// (twice the accepted messages minus the deliveries the sinks answered)
// every 250ms, then waits for the backlog to drain.
//
// Flat means: the backlog's mean over the last quarter of the run is at
// most a quarter second of deliveries (plus 500) above its mean over the
// second quarter (the first is the warm-up), and at least 97% of the
// offered rate was accepted.
func (r *run) fixedRate(ctx context.Context, c *child, rate float64, d time.Duration) rateRun {
	from := r.delivered()
	p := &paced{url: c.url + "/orders", rate: rate, workers: min(1024, max(128, int(rate/5))), want: http.StatusAccepted}
	done := make(chan loadResult, 1)
	go func() { done <- p.run(ctx, d, 0) }()
	var samples []int64
	tick := time.NewTicker(250 * time.Millisecond)
	var res loadResult
loop:
	for {
		select {
		case res = <-done:
			tick.Stop()
			break loop
		case <-tick.C:
			samples = append(samples, 2*p.ok.Load()-(r.delivered()-from))
		}
	}
	deliveredAtEnd := r.delivered() - from
	rr := rateRun{Offered: rate, Accepted: res.RPS(), Delivered: float64(deliveredAtEnd) / 2 / res.Elapsed.Seconds(),
		Late: p.late.Load(), Errors: res.Errors, Backlog: samples}
	rr.Growth, rr.Flat = judge(samples, rate, rr.Accepted)
	took, _ := r.drain(ctx, from, 2*int64(res.Requests), drainLimit)
	rr.Drained = took
	return rr
}

// judge says how much the backlog grew (the mean of the last quarter of
// the samples minus that of the second; the first is the warm-up) and
// whether the run was flat: growth within a quarter second of deliveries
// (two per message) plus 500, and at least 97% of the offered rate
// accepted.
func judge(samples []int64, offered, accepted float64) (growth float64, flat bool) {
	q := len(samples) / 4
	if q == 0 {
		return 0, false
	}
	growth = mean(samples[len(samples)-q:]) - mean(samples[q:2*q])
	return growth, growth <= 2*offered*0.25+500 && accepted >= 0.97*offered
}

func mean(xs []int64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += float64(x)
	}
	return s / float64(len(xs))
}

// p3b: a fixed offered rate, the backlog sampled; with Search, the
// highest rate with a flat backlog, by bisection.
func (r *run) p3b(ctx context.Context, c *child) error {
	if len(r.bare) == 0 {
		r.progress("P3b", "bare fan-out (%s)", r.o.Duration/2)
		if _, err := r.measureBare(ctx, r.o.Duration/2); err != nil {
			return err
		}
	}
	base := r.bareRate()
	goal := 0.7 * base
	rate := r.o.Rate
	if rate <= 0 {
		rate = math.Round(goal)
	}
	r.progress("P3b", "offering %.0f msg/s (%s)", rate, r.o.Duration)
	rr := r.fixedRate(ctx, c, rate, r.o.Duration)
	details := []string{rr.String()}
	best := 0.0
	if rr.Flat {
		best = rate
	}
	if r.o.Search {
		lo, hi := 0.0, rate
		if rr.Flat {
			lo, hi = rate, max(base, 1.5*rate)
		}
		for i := range r.o.SearchSteps {
			mid := math.Round((lo + hi) / 2)
			r.progress("P3b", "search %d/%d: offering %.0f msg/s (%s)", i+1, r.o.SearchSteps, mid, r.o.Duration)
			x := r.fixedRate(ctx, c, mid, r.o.Duration)
			details = append(details, "search: "+x.String())
			if x.Flat {
				lo, best = mid, max(best, mid)
			} else {
				hi = mid
			}
		}
		details = append(details, fmt.Sprintf("highest flat rate found: %.0f msg/s (%.2f× the bare fan-out)", best, ratio(best, base)))
	}
	met := rr.Flat && rate >= goal
	if r.o.Search {
		met = best >= goal
	}
	tandem := fmt.Sprintf("%.0f msg/s offered: %s", rate, rr.Verdict())
	x := ratio(rate, base)
	if r.o.Search {
		tandem = fmt.Sprintf("%.0f msg/s flat", best)
		x = ratio(best, base)
	}
	r.rep.Figures = append(r.rep.Figures, Figure{
		ID: "P3b", Name: "sustained fixed rate, backlog flat, vs bare sync fan-out",
		Tandem: tandem, Base: fmt.Sprintf("%.0f req/s", base), Ratio: x, Unit: "×",
		Goal: "flat at ≥ 0.7×", Met: met, Details: details,
	})
	return nil
}
