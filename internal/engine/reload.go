package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tandem-run/tandem/internal/config"
)

// generation is one config compiled for the engine: its routes and the
// runners of its targets. The engine holds the one in force behind an
// atomic pointer; a reload builds the next one aside and swaps it in
// whole, so every ingest and every attempt sees one config, never a mix.
// What already holds a piece of a generation (an ingest's route plan, an
// attempt's runner and step) finishes on it.
type generation struct {
	cfg     *config.Config
	routes  map[string]*routePlan
	targets map[string]*targetRunner
	names   []string // route names in config order
	// retired holds the last plan of each route a reload removed or
	// changed, so the stored messages of a removed route still finish,
	// and a step a changed route no longer has still runs as it was.
	retired map[string]*routePlan
	// oc: on_complete deliveries and callbacks (oncomplete.go).
	oc *onCompleteState
}

// cur returns the generation in force.
func (e *Engine) cur() *generation { return e.gen.Load() }

// step finds the plan of a stored delivery's step: the route in force
// first, then the route as it was before a reload removed or changed it.
func (g *generation) step(route, step string) *stepPlan {
	if rp := g.routes[route]; rp != nil {
		if sp := rp.byName[step]; sp != nil {
			return sp
		}
	}
	if rp := g.retired[route]; rp != nil {
		return rp.byName[step]
	}
	return nil
}

// compile builds a generation from cfg. Targets whose config did not
// change keep old's runner, and with it their breaker, limiter, pause,
// adaptive limit and attempts in flight.
func (e *Engine) compile(cfg *config.Config, old *generation) (*generation, error) {
	g := &generation{
		cfg:     cfg,
		routes:  make(map[string]*routePlan, len(cfg.Routes)),
		targets: make(map[string]*targetRunner, len(cfg.Targets)),
		retired: map[string]*routePlan{},
	}
	for name, tc := range cfg.Targets {
		if old != nil {
			if tr := old.targets[name]; tr != nil && config.SameTarget(tr.cfg, tc) {
				g.targets[name] = tr
				continue
			}
		}
		tr := newTargetRunner(e, tc)
		if err := trustEndpoint(tr.endpoint, tc); err != nil {
			return nil, fmt.Errorf("engine: target %s: %w", name, err)
		}
		g.targets[name] = tr
	}
	if err := e.setupOnComplete(g, old); err != nil {
		return nil, err
	}
	for _, rc := range cfg.Routes {
		rp := &routePlan{cfg: rc}
		if rc.IsDurable() && e.store == nil {
			return nil, fmt.Errorf("engine: route %s is durable but there is no store", rc.Name)
		}
		if err := e.compilePlan(rp, g.targets); err != nil {
			return nil, err
		}
		rp.cache = newRouteCache(rc, e.metrics) // cache.go; nil without cache:
		g.routes[rc.Name] = rp
		g.names = append(g.names, rc.Name)
	}
	if old != nil {
		for name, rp := range old.retired {
			g.retired[name] = rp
		}
		for name, rp := range old.routes {
			if nr := g.routes[name]; nr == nil || nr.cfg != rp.cfg {
				g.retired[name] = rp
			}
		}
	}
	return g, nil
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	// Targets and routes by what happened to them, sorted.
	TargetsAdded, TargetsChanged, TargetsRemoved []string
	RoutesAdded, RoutesChanged, RoutesRemoved    []string
}

// Reload swaps in cfg, a loaded and validated config, atomically: new
// ingests and new claims use it at once; attempts and fan-outs in flight
// finish on the definitions they began with. Unchanged targets keep their
// runners (breaker, limiter and pause state survive); a changed target
// gets a new runner and its old one stops claiming and drains. Stored
// messages of a removed route still finish; the open deliveries of a
// removed target are dead-lettered with the reason `target "NAME" is no
// longer configured` (replayable once it is back), those in flight once
// their attempt is recorded. On an error nothing changes.
func (e *Engine) Reload(ctx context.Context, cfg *config.Config) (*ReloadResult, error) {
	if cfg == nil {
		return nil, fmt.Errorf("engine: reload: no config")
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if e.closing.Load() {
		return nil, ErrShuttingDown
	}
	old := e.cur()
	next, err := e.compile(cfg, old)
	if err != nil {
		return nil, err
	}
	// Changed route configs are new pointers; compare by content for the
	// report (the plan is recompiled either way).
	res := diffGenerations(old, next)
	e.gen.Store(next)
	e.initMetrics()
	for name, tr := range next.targets {
		if old.targets[name] != tr && e.loopCtx != nil {
			e.startLoop(tr)
		}
	}
	for name, tr := range old.targets {
		if next.targets[name] != tr {
			e.retire(tr)
		}
	}
	if e.store != nil && e.loopCtx != nil && len(res.TargetsRemoved) > 0 {
		now := e.opts.Now().UTC()
		for _, name := range res.TargetsRemoved {
			e.discardTarget(ctx, name, now)
		}
	}
	for name := range next.targets {
		e.wake(name)
	}
	return res, nil
}

// startLoop runs tr's claim loop until its own stop or Shutdown. Called
// with reloadMu held.
func (e *Engine) startLoop(tr *targetRunner) {
	ctx, cancel := context.WithCancel(e.loopCtx)
	e.stops[tr] = cancel
	e.loops.Add(1)
	go func() {
		defer e.loops.Done()
		tr.loop(ctx)
	}()
}

// retire stops tr's claim loop; its attempts in flight finish and are
// recorded. Once they have, the deliveries of a target the config no
// longer has are dead-lettered (they were running when the reload came).
// Called with reloadMu held.
func (e *Engine) retire(tr *targetRunner) {
	if stop := e.stops[tr]; stop != nil {
		stop()
		delete(e.stops, tr)
	}
	if e.store == nil {
		return
	}
	e.retiring.Add(1)
	go func() {
		defer e.retiring.Done()
		// Attempts are bounded by the lease; the poll is, too.
		deadline := time.Now().Add(tr.lease + time.Second)
		for len(tr.slots) > 0 && time.Now().Before(deadline) {
			select {
			case <-e.hardCtx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		if e.closing.Load() || e.cur().targets[tr.cfg.Name] != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.discardTarget(ctx, tr.cfg.Name, e.opts.Now().UTC())
	}()
}

func diffGenerations(old, next *generation) *ReloadResult {
	res := &ReloadResult{}
	for _, name := range sortedNames(next.targets) {
		switch otr := old.targets[name]; {
		case otr == nil:
			res.TargetsAdded = append(res.TargetsAdded, name)
		case otr != next.targets[name]:
			res.TargetsChanged = append(res.TargetsChanged, name)
		}
	}
	for _, name := range sortedNames(old.targets) {
		if next.targets[name] == nil {
			res.TargetsRemoved = append(res.TargetsRemoved, name)
		}
	}
	for _, name := range next.names {
		orp := old.routes[name]
		switch {
		case orp == nil:
			res.RoutesAdded = append(res.RoutesAdded, name)
		case !config.SameRoute(orp.cfg, next.routes[name].cfg) || routeTargetsChanged(next.routes[name], old):
			res.RoutesChanged = append(res.RoutesChanged, name)
		}
	}
	for _, name := range old.names {
		if next.routes[name] == nil {
			res.RoutesRemoved = append(res.RoutesRemoved, name)
		}
	}
	return res
}

// routeTargetsChanged reports whether one of rp's steps calls a target
// whose runner the reload replaced.
func routeTargetsChanged(rp *routePlan, old *generation) bool {
	for _, sp := range rp.byName {
		if otr := old.targets[sp.step.Target]; otr != nil && otr != sp.target {
			return true
		}
	}
	return false
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
