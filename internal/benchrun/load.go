package benchrun

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// payload is the message every figure sends.
const payload = `{"order":"A-1001","total":42.5,"items":[{"sku":"tent","qty":1},{"sku":"stove","qty":2}]}`

// loadResult is one load run's figures, from wrk or the paced client.
type loadResult struct {
	Requests int           // answered with the wanted status
	Errors   int           // other statuses, socket errors, timeouts
	Elapsed  time.Duration // how long the load ran
	P50, P99 time.Duration
}

// RPS is the answered requests per second.
func (r loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// combine adds two runs of the same load (alternating halves); the
// percentiles are the mean of the two, a fair summary of halves of
// equal length.
func combine(a, b loadResult) loadResult {
	if a.Elapsed == 0 {
		return b
	}
	return loadResult{
		Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors, Elapsed: a.Elapsed + b.Elapsed,
		P50: (a.P50 + b.P50) / 2, P99: (a.P99 + b.P99) / 2,
	}
}

// wrkScript makes wrk POST the payload as JSON.
const wrkScript = `wrk.method = "POST"
wrk.body = '` + payload + `'
wrk.headers["Content-Type"] = "application/json"
`

// wrk runs the external load generator, closed loop: conns connections
// over threads threads, for d. Any status but 2xx counts as an error.
func (o *Options) wrk(ctx context.Context, url string, d time.Duration) (loadResult, error) {
	script := filepath.Join(o.work, "post.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
			return loadResult{}, err
		}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Conns), "-d", fmt.Sprintf("%ds", secs),
		"--timeout", "10s", "--latency", "-s", script, url}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, o.Wrk, args...).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk %s: %w: %s", url, err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m|h)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
)

// parseWrk reads wrk's --latency report.
func parseWrk(out string) (loadResult, error) {
	var r loadResult
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no request count in its output: %s", out)
	}
	total, _ := strconv.Atoi(m[1])
	r.Elapsed = unitDuration(m[2], m[3])
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
		total -= n
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	r.Requests = total
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		d := unitDuration(m[2], m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	return r, nil
}

func unitDuration(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(f * float64(scale))
}

// paced is an open-loop client: it offers rate requests per second,
// each due at its own time (start + i/rate) whatever the answers to the
// earlier ones, from up to workers requests in flight, until d passes or
// count requests were sent (count 0: no limit). A request is late when no
// worker was free at its time; late requests are counted, since a
// generator that falls behind understates the offered rate.
type paced struct {
	url     string
	rate    float64
	workers int
	want    int // the status that counts as answered

	sent, ok, errs, late atomic.Int64
}

func (p *paced) run(ctx context.Context, d time.Duration, count int64) loadResult {
	tr := &http.Transport{MaxIdleConns: 2 * p.workers, MaxIdleConnsPerHost: 2 * p.workers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	body := []byte(payload)
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for {
				i := next.Add(1) - 1
				if count > 0 && i >= count {
					return
				}
				due := start
				if p.rate > 0 {
					due = start.Add(time.Duration(float64(i) / p.rate * float64(time.Second)))
				}
				if wait := time.Until(due); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				} else if wait < -10*time.Millisecond && p.rate > 0 {
					p.late.Add(1)
				}
				if ctx.Err() != nil {
					return
				}
				p.sent.Add(1)
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, p.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					p.errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != p.want {
					p.errs.Add(1)
					continue
				}
				p.ok.Add(1)
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r := loadResult{Requests: int(p.ok.Load()), Errors: int(p.errs.Load()), Elapsed: time.Since(start)}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return strings.TrimSuffix(fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)), ".00ms")
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
