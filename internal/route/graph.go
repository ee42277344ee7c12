package route

import (
	"fmt"
	"slices"
	"strings"
)

// graph is a route's step graph, built by newGraph in one pass: every
// problem of the after lists (unknown, self, repeated, duplicate names,
// each cycle once), and per step its closure both ways and its level.
// It tolerates the problems it reports, so template scopes can still be
// checked on a broken route.
type graph struct {
	// index is the first step of each name.
	index map[string]int
	// names are the step names in config order (empty ones left out).
	names []string
	// upstream is, per step, every step it waits for, directly or not,
	// sorted; downstream is the reverse.
	upstream, downstream [][]string
	// level is, per step, one more than its deepest after step's (0 for
	// none); only meaningful without cycles.
	level []int
}

// newGraph builds the graph of steps, reporting its problems to ps.
func newGraph(steps []StepSpec, ps *problems) *graph {
	g := &graph{
		index:      map[string]int{},
		upstream:   make([][]string, len(steps)),
		downstream: make([][]string, len(steps)),
		level:      make([]int, len(steps)),
	}
	for j, s := range steps {
		if s.Name == "" {
			continue // config reports a missing name
		}
		if j2, dup := g.index[s.Name]; dup {
			ps.errf(at(nil, "steps", j, "name"), "duplicate step name %q (also steps[%d])", s.Name, j2)
			continue
		}
		g.index[s.Name] = j
		g.names = append(g.names, s.Name)
	}
	known := slices.Sorted(slices.Values(g.names))
	// deps are each step's usable after entries: known, not itself, once.
	deps := make([][]int, len(steps))
	for j, s := range steps {
		seen := map[string]bool{}
		for k, dep := range s.After {
			ap := at(nil, "steps", j, "after", k)
			d, ok := g.index[dep]
			switch {
			case !ok:
				ps.errf(ap, "%s", withHint(fmt.Sprintf("unknown step %q", dep), dep, known))
			case dep == s.Name:
				ps.errf(ap, "step %q cannot wait on itself", dep)
			case seen[dep]:
				ps.errf(ap, "step %q is listed twice", dep)
			default:
				deps[j] = append(deps[j], d)
			}
			seen[dep] = true
		}
	}
	g.walk(steps, ps)
	for j := range steps {
		g.upstream[j] = g.reach(steps, deps, j)
		for _, u := range g.upstream[j] {
			d := g.index[u]
			g.downstream[d] = append(g.downstream[d], steps[j].Name)
		}
	}
	for j := range steps {
		slices.Sort(g.downstream[j])
	}
	return g
}

// walk visits the steps depth first in config order, setting levels and
// reporting each cycle once, at the after entry that closes it.
func (g *graph) walk(steps []StepSpec, ps *problems) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(steps))
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for k, dep := range steps[i].After {
			j, ok := g.index[dep]
			if !ok || j == i {
				continue // reported by newGraph
			}
			switch color[j] {
			case white:
				visit(j)
			case grey:
				start := slices.Index(stack, j)
				cyc := make([]string, 0, len(stack)-start+1)
				for _, s := range stack[start:] {
					cyc = append(cyc, steps[s].Name)
				}
				cyc = append(cyc, steps[j].Name)
				ps.errf(at(nil, "steps", i, "after", k), "dependency cycle: %s", strings.Join(cyc, " -> "))
				continue
			}
			g.level[i] = max(g.level[i], g.level[j]+1)
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range steps {
		if color[i] == white {
			visit(i)
		}
	}
}

// reach returns the names of every step j waits for, directly or not,
// sorted, without j itself (a cycle may lead back to it).
func (g *graph) reach(steps []StepSpec, deps [][]int, j int) []string {
	seen := map[int]bool{}
	var visit func(int)
	visit = func(i int) {
		for _, d := range deps[i] {
			if !seen[d] {
				seen[d] = true
				visit(d)
			}
		}
	}
	visit(j)
	delete(seen, j)
	out := make([]string, 0, len(seen))
	for i := range seen {
		out = append(out, steps[i].Name)
	}
	slices.Sort(out)
	return out
}

// visible is the set of names, for a template scope.
func visible(names []string, more ...string) map[string]bool {
	m := make(map[string]bool, len(names)+len(more))
	for _, n := range names {
		m[n] = true
	}
	for _, n := range more {
		m[n] = true
	}
	return m
}
