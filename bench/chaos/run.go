package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tandem-run/tandem/bench/chaos/history"
	"github.com/tandem-run/tandem/client"
)

// storeRun is the result of one store's run.
type storeRun struct {
	store   string
	dir     string
	events  int
	fired   map[string]int
	replays struct {
		calls, ids, empty, failed int
		last                      string
	}
	load     *loader
	drain    drainReport
	report   *history.Report
	messages int
}

// rig is everything one store's run set up.
type rig struct {
	opt     options
	store   string
	dir     string
	targets map[string]*target
	servers []*httptest.Server
	tproxy  map[string]*toxiproxy.Proxy // by target
	dbproxy []*toxiproxy.Proxy          // by replica (postgres)
	cluster *cluster
	faults  *faultLog
	run     *storeRun
	schema  string
	pgBase  string

	mu sync.Mutex // guards run.fired and run.replays
}

// runStore runs one store's chaos: set up, faults with load, heal, drain,
// read, check.
func runStore(ctx context.Context, opt options, store, bin, base string) (*storeRun, error) {
	rg := &rig{opt: opt, store: store, dir: filepath.Join(base, store), targets: map[string]*target{},
		tproxy: map[string]*toxiproxy.Proxy{}, faults: &faultLog{},
		run: &storeRun{store: store, fired: map[string]int{}}}
	rg.run.dir = rg.dir
	if err := os.MkdirAll(rg.dir, 0o755); err != nil {
		return nil, err
	}
	defer rg.close()
	if err := rg.setup(ctx); err != nil {
		return nil, err
	}
	replicas := len(rg.cluster.replicas)
	for i := range replicas {
		if err := rg.cluster.start(ctx, i); err != nil {
			return nil, err
		}
	}
	events := plan(opt.seed, store, opt.phase, replicas)
	rg.run.events = len(events)
	var sched strings.Builder
	for _, e := range events {
		fmt.Fprintf(&sched, "%s\n", e)
		if opt.verbose {
			fmt.Printf("  %s: %s\n", store, e)
		}
	}
	if err := os.WriteFile(filepath.Join(rg.dir, "schedule.txt"), []byte(sched.String()), 0o644); err != nil {
		return nil, err
	}

	ld := &loader{prefix: fmt.Sprintf("%s-%d", store, opt.seed), bases: rg.cluster.bases(),
		client: &http.Client{Timeout: 10 * time.Second}, ackWithin: 30 * time.Second}
	rg.run.load = ld
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		ld.run(stopLoad, opt.rate)
	}()

	// The fault phase: every event fires at its time; a fault lasts its
	// For, or until heal.
	heal, healNow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	for _, e := range events {
		if !sleepUntil(heal, start.Add(e.At)) {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rg.fire(ctx, heal, e)
		}()
	}
	sleepUntil(heal, start.Add(opt.phase))
	close(stopLoad)
	healNow()
	wg.Wait()
	for _, p := range rg.tproxy {
		p.Toxics.ResetToxics(context.Background())
	}
	for _, p := range rg.dbproxy {
		p.Toxics.ResetToxics(context.Background())
	}
	for _, t := range rg.targets {
		t.heal()
	}
	for i := range replicas {
		if err := rg.cluster.start(ctx, i); err != nil {
			return nil, err
		}
	}
	select {
	case <-loadDone:
	case <-time.After(45 * time.Second):
		return nil, fmt.Errorf("%s: the clients did not finish within 45s of the end of the load", store)
	}

	rg.run.drain = drain(ctx, rg.cluster, opt.drain)
	msgs, err := readAll(ctx, client.New(rg.cluster.live(0), ""))
	if err != nil {
		return nil, err
	}
	rg.run.messages = len(msgs)
	rg.cluster.stopAll(10 * time.Second)

	h := &history.History{Routes: routes, Acks: ld.snapshot(), Faults: rg.faults.all(), Messages: msgs}
	for _, t := range rg.targets {
		h.Requests = append(h.Requests, t.requests()...)
	}
	rg.run.report = history.Check(h, history.Options{Lease: targetTimeout + leaseMargin})
	if err := writeJSON(filepath.Join(rg.dir, "history.json"), h); err != nil {
		return nil, err
	}
	return rg.run, nil
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// setup starts the targets, their proxies, the database proxies and the
// cluster (not yet its processes).
func (rg *rig) setup(ctx context.Context) error {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	addrs := map[string]string{}
	for _, spec := range targetSpecs {
		t := newTarget(spec.name, rg.opt.seed, targetTimeout, spec.declinePct)
		ts := httptest.NewServer(t)
		rg.servers = append(rg.servers, ts)
		rg.targets[spec.name] = t
		p := toxiproxy.NewProxy(srv, spec.name, "127.0.0.1:0", ts.Listener.Addr().String())
		if err := p.Start(); err != nil {
			return fmt.Errorf("start proxy of %s: %w", spec.name, err)
		}
		rg.tproxy[spec.name] = p
		addrs[spec.name] = p.Listen
	}
	replicas := 1
	var dsns []string
	switch rg.store {
	case "sqlite":
		dsns = []string{filepath.Join(rg.dir, "tandem.db")}
	case "postgres":
		replicas = 3
		u, err := url.Parse(rg.opt.postgres)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return fmt.Errorf("TANDEM_TEST_POSTGRES must be a postgres:// URL with a host")
		}
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		rg.schema = fmt.Sprintf("chaos_%d_%s", rg.opt.seed, hex.EncodeToString(b))
		rg.pgBase = rg.opt.postgres
		for i := range replicas {
			p := toxiproxy.NewProxy(srv, fmt.Sprintf("postgres-%d", i), "127.0.0.1:0", u.Host)
			if err := p.Start(); err != nil {
				return fmt.Errorf("start database proxy: %w", err)
			}
			rg.dbproxy = append(rg.dbproxy, p)
			pu := *u
			pu.Host = p.Listen
			q := pu.Query()
			q.Set("search_path", rg.schema)
			q.Set("connect_timeout", "2")
			pu.RawQuery = q.Encode()
			dsns = append(dsns, pu.String())
		}
	default:
		return fmt.Errorf("unknown store %q", rg.store)
	}
	driver := rg.store
	c, err := newCluster(rg.opt.bin, rg.dir, replicas, func(replica, gen int) string {
		return renderConfig(driver, dsns[replica], addrs, replica, gen)
	}, rg.faults)
	if err != nil {
		return err
	}
	rg.cluster = c
	return nil
}

// close stops everything the rig started and drops the run's schema.
func (rg *rig) close() {
	if rg.cluster != nil {
		rg.cluster.stopAll(5 * time.Second)
	}
	for _, p := range rg.tproxy {
		p.Stop()
	}
	for _, p := range rg.dbproxy {
		p.Stop()
	}
	for _, s := range rg.servers {
		s.CloseClientConnections()
		s.Close()
	}
	if rg.schema != "" && !rg.opt.keep {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, rg.pgBase); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{rg.schema}.Sanitize()+" CASCADE")
			_ = conn.Close(ctx)
		}
	}
}

func (rg *rig) count(kind string) {
	rg.mu.Lock()
	rg.run.fired[kind]++
	rg.mu.Unlock()
}

// fire runs one event: it starts the fault, holds it for e.For or until
// heal ends, and ends it.
func (rg *rig) fire(ctx, heal context.Context, e event) {
	hold := func() { sleepUntil(heal, time.Now().Add(e.For)) }
	switch e.Kind {
	case evKill, evStop:
		sig, grace := syscall.SIGKILL, 10*time.Second
		if e.Kind == evStop {
			sig, grace = syscall.SIGTERM, 10*time.Second
		}
		ok, err := rg.cluster.signal(e.Replica, sig, grace)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s: %v\n", rg.store, err)
		}
		if !ok {
			return // already down
		}
		rg.count(e.Kind)
		hold()
		if err := rg.cluster.start(ctx, e.Replica); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s: restart: %v\n", rg.store, err)
		}
	case evDBCut, evDBLatency:
		p := rg.dbproxy[e.Replica]
		name := fmt.Sprintf("ev%d", e.ID)
		tx := toxic{Name: name, Type: "reset_peer", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}}
		kind := history.DBCut
		if e.Kind == evDBLatency {
			kind = history.DBLatency
			ms := e.Latency.Milliseconds()
			tx = toxic{Name: name, Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": ms, "jitter": ms / 2}}
		}
		start := time.Now()
		if !rg.addToxic(p, tx) {
			return
		}
		rg.count(e.Kind)
		hold()
		_ = p.Toxics.RemoveToxic(context.Background(), name)
		rg.faults.add(history.Fault{Kind: kind, Replica: e.Replica, Start: start, End: time.Now()})
	case evTarget:
		t := rg.targets[e.Target]
		t.setRule(e.ID, rule{mode: e.Mode, pct: e.Pct})
		rg.count(e.Kind + " " + e.Mode)
		hold()
		t.clearRule(e.ID)
	case evLink:
		p := rg.tproxy[e.Target]
		name := fmt.Sprintf("ev%d", e.ID)
		pct := float32(e.Pct) / 100
		var tx toxic
		switch e.Mode {
		case linkLatency:
			ms := e.Latency.Milliseconds()
			tx = toxic{Name: name, Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": ms, "jitter": ms / 3}}
		case linkReset:
			// The request reaches the target; its answer is cut off.
			tx = toxic{Name: name, Type: "reset_peer", Stream: "downstream", Toxicity: pct, Attributes: map[string]any{"timeout": 0}}
		default:
			tx = toxic{Name: name, Type: "timeout", Stream: "upstream", Toxicity: pct, Attributes: map[string]any{"timeout": 0}}
		}
		if !rg.addToxic(p, tx) {
			return
		}
		rg.count(e.Kind + " " + e.Mode)
		hold()
		_ = p.Toxics.RemoveToxic(context.Background(), name)
	case evReplay:
		rg.replay(ctx, e)
	}
}

// toxic is one toxiproxy toxic as its JSON API describes it.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

func (rg *rig) addToxic(p *toxiproxy.Proxy, tx toxic) bool {
	b, _ := json.Marshal(tx)
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s: add toxic %s: %v\n", rg.store, tx.Name, err)
		return false
	}
	return true
}

// replay replays dead letters through the admin API of a live replica.
func (rg *rig) replay(ctx context.Context, e event) {
	if !rg.cluster.anyLive() {
		rg.count(evReplay + " skipped: no replica up")
		return
	}
	api := client.New(rg.cluster.live(e.Replica), "")
	req := client.ReplayRequest{}
	switch e.Mode {
	case replayAll:
		req.All = true
	case replayRoute:
		req.Route = e.Route
	case replayTgt:
		req.Target = e.Target
	default:
		ds, _, err := api.DeadLetters(ctx, client.ListOptions{Limit: 20})
		if err != nil || len(ds) == 0 {
			return
		}
		for _, d := range ds {
			req.IDs = append(req.IDs, d.ID)
		}
	}
	ids, err := api.Replay(ctx, req)
	rg.mu.Lock()
	defer rg.mu.Unlock()
	rg.run.fired[evReplay+" "+e.Mode]++
	rg.run.replays.calls++
	rg.run.replays.ids += len(ids)
	var p *client.Problem
	switch {
	case err == nil:
	case errors.As(err, &p) && p.Status == http.StatusUnprocessableEntity:
		rg.run.replays.empty++ // nothing matched the selection
	default:
		rg.run.replays.failed++
		rg.run.replays.last = err.Error()
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
