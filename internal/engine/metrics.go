package engine

// initMetrics resolves the series of every route, step (compensations
// included) and target once, so each exists at 0 before its first event:
// a rate() over a series that appears only with its first event misses
// that event, and an alert on an absent series never fires.
func (e *Engine) initMetrics() {
	g := e.cur()
	for _, name := range g.names {
		rp := g.routes[name]
		e.metrics.Route(name)
		for _, s := range rp.plan.Steps {
			e.metrics.Step(name, s.Name, s.Target)
		}
		for _, c := range rp.plan.Compensations {
			e.metrics.Step(name, c.Name, c.Target)
		}
	}
	for name := range g.targets {
		e.metrics.Target(name)
	}
}
