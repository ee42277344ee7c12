package main

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// The kinds of schedule events.
const (
	evKill      = "kill"       // SIGKILL a replica, restart it after For
	evStop      = "stop"       // SIGTERM a replica, restart it after For
	evDBCut     = "db-cut"     // reset every database connection of a replica for For
	evDBLatency = "db-latency" // delay a replica's database answers by Latency for For
	evTarget    = "target"     // a target misbehaves (Mode, Pct) for For
	evLink      = "link"       // a toxic between tandem and a target (Mode) for For
	evReplay    = "replay"     // POST /v1/dead-letters/replay, selected by Mode
)

// Link toxics and replay selections.
const (
	linkLatency = "latency"   // answers late: may outlast tandem's timeout (a lost answer)
	linkReset   = "reset"     // answers cut off by a reset
	linkBlack   = "blackhole" // requests dropped: tandem times out
	replayAll   = "all"
	replayRoute = "route"
	replayTgt   = "target"
	replayIDs   = "ids"
)

// event is one step of a schedule.
type event struct {
	ID      int
	At      time.Duration // from the start of the fault phase
	Kind    string
	Replica int
	Target  string
	Route   string
	Mode    string
	Pct     int
	For     time.Duration
	Latency time.Duration
}

func (e event) String() string {
	switch e.Kind {
	case evKill, evStop:
		return fmt.Sprintf("%7.2fs %-10s replica %d, restart after %v", e.At.Seconds(), e.Kind, e.Replica, e.For)
	case evDBCut:
		return fmt.Sprintf("%7.2fs %-10s replica %d for %v", e.At.Seconds(), e.Kind, e.Replica, e.For)
	case evDBLatency:
		return fmt.Sprintf("%7.2fs %-10s replica %d +%v for %v", e.At.Seconds(), e.Kind, e.Replica, e.Latency, e.For)
	case evTarget:
		return fmt.Sprintf("%7.2fs %-10s %s %s %d%% for %v", e.At.Seconds(), e.Kind, e.Target, e.Mode, e.Pct, e.For)
	case evLink:
		return fmt.Sprintf("%7.2fs %-10s %s %s %d%% +%v for %v", e.At.Seconds(), e.Kind, e.Target, e.Mode, e.Pct, e.Latency, e.For)
	default:
		return fmt.Sprintf("%7.2fs %-10s %s %s%s", e.At.Seconds(), e.Kind, e.Mode, e.Route, e.Target)
	}
}

// weighted is a kind of event and how often it is drawn.
type weighted struct {
	kind   string
	weight int
}

// plan draws the schedule of one store's fault phase from the seed. The
// same seed, store, length and replica count give the same schedule.
func plan(seed uint64, store string, length time.Duration, replicas int) []event {
	h := fnv.New64a()
	h.Write([]byte(store))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	kinds := []weighted{{evTarget, 6}, {evLink, 4}, {evReplay, 3}}
	if store == "postgres" {
		kinds = append(kinds, weighted{evDBCut, 2}, weighted{evDBLatency, 3})
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	targets := make([]string, len(targetSpecs))
	for i, t := range targetSpecs {
		targets[i] = t.name
	}
	var out []event
	// Processes die on their own clock, every 3–8s, so every run has its
	// crashes; the other faults come every 0.3–1.8s. Faults start after a
	// calm second and stop a second before the end.
	for at := time.Second + between(time.Second, 3*time.Second); at < length-time.Second; at += between(3*time.Second, 8*time.Second) {
		e := event{At: at, Kind: evKill, Replica: rng.IntN(replicas), For: between(100*time.Millisecond, 1500*time.Millisecond)}
		if rng.IntN(4) == 0 {
			e.Kind = evStop
		}
		out = append(out, e)
	}
	for at := time.Second + between(0, time.Second); at < length-time.Second; at += between(300*time.Millisecond, 1800*time.Millisecond) {
		n := rng.IntN(total)
		kind := kinds[0].kind
		for _, k := range kinds {
			if n < k.weight {
				kind = k.kind
				break
			}
			n -= k.weight
		}
		e := event{At: at, Kind: kind, Replica: rng.IntN(replicas)}
		switch kind {
		case evDBCut:
			e.For = between(300*time.Millisecond, 3*time.Second)
		case evDBLatency:
			e.For = between(time.Second, 4*time.Second)
			e.Latency = between(100*time.Millisecond, 1500*time.Millisecond)
		case evTarget:
			e.Target = targets[rng.IntN(len(targets))]
			e.Mode = targetModes[rng.IntN(len(targetModes))]
			e.Pct = 20 + rng.IntN(61)
			e.For = between(500*time.Millisecond, 4*time.Second)
		case evLink:
			e.Target = targets[rng.IntN(len(targets))]
			e.Mode = []string{linkLatency, linkReset, linkBlack}[rng.IntN(3)]
			e.Pct = 10 + rng.IntN(41)
			e.For = between(500*time.Millisecond, 3*time.Second)
			if e.Mode == linkLatency {
				e.Pct = 100
				e.Latency = between(100*time.Millisecond, 1200*time.Millisecond)
			}
		case evReplay:
			e.Mode = []string{replayAll, replayRoute, replayTgt, replayIDs}[rng.IntN(4)]
			switch e.Mode {
			case replayRoute:
				e.Route = routes[rng.IntN(len(routes))].Name
			case replayTgt:
				e.Target = targets[rng.IntN(len(targets))]
			}
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b event) int { return cmp.Compare(a.At, b.At) })
	for i := range out {
		out[i].ID = i + 1
	}
	return out
}
