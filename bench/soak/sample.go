package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	backlog    int   // deliveries due, scheduled, waiting or running
	rssFileKiB int64 // the part of rss that maps files (RssFile + RssShmem)
	delivered  int   // deliveries that succeeded (tandem_deliveries_total)
	ingestP99  time.Duration
}

func (s sample) String() string {
	return fmt.Sprintf("%8s %9d %9d %7d %8.1f %8.1f %8.1f %8.1f %10d %8d %9d %9s %8d",
		s.at.Round(time.Second), s.sent, s.accepted, s.errs, float64(s.rssKiB)/1024, float64(s.rssFileKiB)/1024,
		float64(s.goSysKiB)/1024, float64(s.heapKiB)/1024,
		s.goroutines, s.backlog, s.delivered, s.ingestP99.Round(100*time.Microsecond), s.fds)
}

func measure(start time.Time, l *load, gw *gateway) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{
		at:         time.Since(start),
		sent:       l.sent.Load(),
		accepted:   l.accepted.Load(),
		errs:       l.errs.Load(),
		rssKiB:     procStatus("VmRSS"),
		rssFileKiB: procStatus("RssFile") + procStatus("RssShmem"),
		heapKiB:    int64(ms.HeapInuse / 1024),
		goSysKiB:   int64((ms.Sys - ms.HeapReleased) / 1024),
		goroutines: runtime.NumGoroutine(),
		fds:        openFiles(),
		delivered:  succeeded(gw.reg),
		ingestP99:  percentile(l.takeLatencies(), 0.99),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if stats, err := gw.store.DeliveryStats(ctx, nil); err == nil {
		for _, t := range stats {
			s.backlog += t.Due + t.Scheduled + t.Waiting + t.Running
		}
	} else {
		s.backlog = -1
	}
	return s
}

// procStatus reads a "kB" field of /proc/self/status (VmRSS, RssFile...);
// -1 when it cannot.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
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

// counterSum adds up the counter family name over the series whose
// labels match every pair in match; by, when set, names a label to break
// the sum down by (returned as "value=sum ..." sorted).
func counterSum(g prometheus.Gatherer, name string, match map[string]string, by string) (float64, string) {
	mfs, err := g.Gather()
	if err != nil {
		return -1, err.Error()
	}
	total := 0.0
	parts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue series
				}
			}
			v := m.GetCounter().GetValue()
			total += v
			if by != "" {
				parts[labels[by]] += v
			}
		}
	}
	keys := slices.Sorted(maps.Keys(parts))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%.0f", k, parts[k]))
	}
	return total, strings.Join(out, " ")
}

// succeeded is how many deliveries the engine recorded as succeeded.
func succeeded(g prometheus.Gatherer) int {
	n, _ := counterSum(g, "tandem_deliveries_total", map[string]string{"status": "succeeded"}, "")
	return int(n)
}

// flatness judges one series sampled under load: the mean of its last
// quarter against the mean of its second quarter (a leak grows through
// both; a cache that fills up early does not), with slack for noise.
type flatness struct {
	name              string
	warm, top         float64 // first sample after warm-up; highest after it
	second, last      float64 // means of the second and last quarters
	slack             float64
	samples, quarters int
}

func (f flatness) growth() float64 { return f.last - f.second }

func (f flatness) flat() bool { return f.growth() <= f.slack }

func (f flatness) String() string {
	verdict := "flat"
	if !f.flat() {
		verdict = "GROWING"
	}
	return fmt.Sprintf("%-10s after warm-up %7.1f, mean of 2nd quarter %7.1f, of last quarter %7.1f, highest %7.1f; growth %+7.1f (allowed %+.1f): %s",
		f.name, f.warm, f.second, f.last, f.top, f.growth(), f.slack, verdict)
}

// judge builds the flatness of xs. Slack is the larger of rel × the
// second quarter's mean and abs.
func judge(name string, xs []float64, rel, abs float64) flatness {
	n := len(xs)
	f := flatness{name: name, samples: n}
	if n == 0 {
		return f
	}
	q := max(1, n/4)
	mean := func(ys []float64) float64 {
		sum := 0.0
		for _, y := range ys {
			sum += y
		}
		return sum / float64(len(ys))
	}
	warm := min(max(1, n/10), n-1)
	f.warm = xs[warm]
	for _, x := range xs[warm:] {
		f.top = max(f.top, x)
	}
	f.second = mean(xs[min(q, n-1):min(2*q, n)])
	f.last = mean(xs[n-q:])
	f.slack = max(rel*f.second, abs)
	return f
}

func report(o options, samples []sample, l *load, a, b *counter, gw *gateway, loadTime, drained time.Duration) {
	// Samples under load: all but the last (taken after the drain).
	under := samples[:len(samples)-1]
	rss := make([]float64, len(under))
	anon := make([]float64, len(under))
	heap := make([]float64, len(under))
	gor := make([]float64, len(under))
	fds := make([]float64, len(under))
	for i, s := range under {
		rss[i] = float64(s.rssKiB) / 1024
		anon[i] = float64(s.rssKiB-s.rssFileKiB) / 1024
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
	done := succeeded(gw.reg)
	fmt.Printf("delivery: %d of %d deliveries succeeded (2 per accepted message); the targets answered 2xx %d and %d times (requests: %d and %d); drained %v after the load\n",
		done, 2*accepted, a.ok.Load(), b.ok.Load(), a.requests.Load(), b.requests.Load(), drained.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead, open := -1, -1
	if stats, err := gw.store.DeliveryStats(ctx, nil); err == nil {
		dead, open = 0, 0
		for _, t := range stats {
			dead += t.Dead
			open += t.Due + t.Scheduled + t.Waiting + t.Running
		}
		fmt.Printf("store at the end: %d dead letters, %d deliveries not finished\n", dead, open)
	}
	_, byOutcome := counterSum(gw.reg, "tandem_attempts_total", map[string]string{"target": "shaky"}, "outcome")
	fmt.Printf("attempts to the first target (proxy): %s\n", byOutcome)
	_, byOutcome = counterSum(gw.reg, "tandem_attempts_total", map[string]string{"target": "flaky"}, "outcome")
	fmt.Printf("attempts to the second target (503s): %s\n", byOutcome)
	checks := []flatness{
		judge("rss MiB", rss, 0.10, 16),
		judge("anon MiB", anon, 0.10, 16),
		judge("heap MiB", heap, 0.10, 8),
		judge("goroutines", gor, 0.10, 50),
		judge("fds", fds, 0.10, 50),
	}
	fmt.Println()
	flat := true
	for _, c := range checks {
		fmt.Println(c)
		flat = flat && c.flat()
	}
	missing := 2*int(accepted) - done
	switch {
	case flat && missing == 0 && dead == 0:
		fmt.Println("verdict: FLAT — memory, goroutines and file descriptors stayed level; every accepted message reached both targets")
	case flat:
		fmt.Printf("verdict: FLAT, but %d deliveries had not succeeded when the drain time ended (%d dead letters)\n", missing, dead)
	default:
		fmt.Println("verdict: GROWING — see the series marked GROWING above")
	}
}
