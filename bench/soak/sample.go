package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/store"
)

// sample is one point of the curve.
type sample struct {
	at         time.Duration // since the start
	sent       int64
	accepted   int64
	errs       int64
	rssKiB     int64
	heapKiB    int64
	goSysKiB   int64 // memory the Go runtime holds from the OS
	goroutines int
	fds        int
	backlog    int // deliveries due, scheduled, waiting or running
	delivered  int // deliveries that reached their target with a 2xx
	ingestP99  time.Duration
}

func (s sample) String() string {
	return fmt.Sprintf("%8s %9d %9d %7d %8.1f %8.1f %8.1f %10d %8d %9d %9s %8d",
		s.at.Round(time.Second), s.sent, s.accepted, s.errs, float64(s.rssKiB)/1024, float64(s.goSysKiB)/1024, float64(s.heapKiB)/1024,
		s.goroutines, s.backlog, s.delivered, s.ingestP99.Round(100*time.Microsecond), s.fds)
}

func measure(start time.Time, l *load, st store.Store, a, b *counter) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{
		at:         time.Since(start),
		sent:       l.sent.Load(),
		accepted:   l.accepted.Load(),
		errs:       l.errs.Load(),
		rssKiB:     rssKiB(),
		heapKiB:    int64(ms.HeapInuse / 1024),
		goSysKiB:   int64((ms.Sys - ms.HeapReleased) / 1024),
		goroutines: runtime.NumGoroutine(),
		fds:        openFiles(),
		delivered:  a.delivered() + b.delivered(),
		ingestP99:  percentile(l.takeLatencies(), 0.99),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if stats, err := st.DeliveryStats(ctx, nil); err == nil {
		for _, t := range stats {
			s.backlog += t.Due + t.Scheduled + t.Waiting + t.Running
		}
	} else {
		s.backlog = -1
	}
	return s
}

// rssKiB reads VmRSS from /proc/self/status; -1 when it cannot.
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) == 0 {
			return -1
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// openFiles counts this process's open file descriptors; -1 when it cannot.
func openFiles() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// attemptCounts reads tandem_attempts_total by target and outcome.
func attemptCounts(g prometheus.Gatherer) string {
	mfs, err := g.Gather()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, mf := range mfs {
		if mf.GetName() != "tandem_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var target, outcome string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "target":
					target = lp.GetValue()
				case "outcome":
					outcome = lp.GetValue()
				}
			}
			parts = append(parts, fmt.Sprintf("%s/%s=%.0f", target, outcome, m.GetCounter().GetValue()))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// flatness judges one series after warm-up: the growth from the middle
// sample to the end against the allowed slack.
type flatness struct {
	name                string
	warm, mid, end, top float64
	slack               float64
}

func (f flatness) growth() float64 { return f.end - f.mid }

func (f flatness) flat() bool { return f.growth() <= f.slack }

func (f flatness) String() string {
	verdict := "flat"
	if !f.flat() {
		verdict = "GROWING"
	}
	return fmt.Sprintf("%-10s after warm-up %8.1f, middle %8.1f, end %8.1f, highest %8.1f; middle→end %+8.1f (allowed %+.1f): %s",
		f.name, f.warm, f.mid, f.end, f.top, f.growth(), f.slack, verdict)
}

// judge builds the flatness of a series sampled during the load: the
// warm-up point is the first sample after 10% of the load (at least the
// second sample), the middle one is halfway, the end one is the last
// sample under load. Slack is the larger of rel × middle and abs.
func judge(name string, xs []float64, rel, abs float64) flatness {
	n := len(xs)
	if n == 0 {
		return flatness{name: name}
	}
	warm := max(1, n/10)
	if warm >= n {
		warm = n - 1
	}
	f := flatness{name: name, warm: xs[warm], mid: xs[warm+(n-1-warm)/2], end: xs[n-1]}
	for _, x := range xs[warm:] {
		f.top = max(f.top, x)
	}
	f.slack = max(rel*f.mid, abs)
	return f
}

func report(o options, samples []sample, l *load, a, b *counter, gw *gateway, loadTime, drained time.Duration) {
	// Samples under load: all but the last (taken after the drain).
	under := samples[:len(samples)-1]
	rss := make([]float64, len(under))
	heap := make([]float64, len(under))
	gor := make([]float64, len(under))
	fds := make([]float64, len(under))
	for i, s := range under {
		rss[i] = float64(s.rssKiB) / 1024
		heap[i] = float64(s.heapKiB) / 1024
		gor[i] = float64(s.goroutines)
		fds[i] = float64(s.fds)
	}
	last := samples[len(samples)-1]
	fmt.Println()
	fmt.Println("curve (start, middle, end of the load; after the drain):")
	fmt.Println(" ", under[0])
	fmt.Println(" ", under[len(under)/2])
	fmt.Println(" ", under[len(under)-1])
	fmt.Println(" ", last)
	fmt.Println()
	accepted := l.accepted.Load()
	fmt.Printf("load: %d sent in %v (%.0f/s offered, %.0f/s accepted), %d errors, %d late sends",
		l.sent.Load(), loadTime.Round(time.Millisecond), o.rate, float64(accepted)/loadTime.Seconds(), l.errs.Load(), l.late.Load())
	if e := l.lastErr.Load(); e != nil {
		fmt.Printf(" (last error: %v)", e)
	}
	fmt.Println()
	fmt.Printf("delivery: %d of %d messages reached the first target, %d the second (requests: %d and %d); drained %v after the load\n",
		a.delivered(), accepted, b.delivered(), a.requests.Load(), b.requests.Load(), drained.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if stats, err := gw.store.DeliveryStats(ctx, nil); err == nil {
		dead, open := 0, 0
		for _, t := range stats {
			dead += t.Dead
			open += t.Due + t.Scheduled + t.Waiting + t.Running
		}
		fmt.Printf("store at the end: %d dead letters, %d deliveries not finished\n", dead, open)
	}
	fmt.Printf("attempts by target and outcome: %s\n", attemptCounts(gw.reg))
	checks := []flatness{
		judge("rss MiB", rss, 0.10, 16),
		judge("heap MiB", heap, 0.10, 8),
		judge("goroutines", gor, 0.10, 20),
		judge("fds", fds, 0.10, 20),
	}
	fmt.Println()
	flat := true
	for _, c := range checks {
		fmt.Println(c)
		flat = flat && c.flat()
	}
	lost := int(accepted) - min(a.delivered(), b.delivered())
	switch {
	case flat && lost == 0:
		fmt.Println("verdict: FLAT — memory, goroutines and file descriptors stayed level; every accepted message reached both targets")
	case flat:
		fmt.Printf("verdict: FLAT, but %d accepted messages had not reached both targets when the drain time ended\n", lost)
	default:
		fmt.Println("verdict: GROWING — see the series marked GROWING above")
	}
}
