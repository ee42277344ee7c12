package config

import (
	"errors"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/contract"
	"github.com/tandem-run/tandem/internal/route/template"
)

// Balance values (targets.*.balance).
const (
	BalanceRoundRobin    = "round_robin"
	BalanceLeastInFlight = "least_in_flight"
)

// Defaults of the keys in this file (docs/config.md).
const (
	DefaultEjectFailures = 5
	DefaultEjectCoolOff  = Duration(30 * time.Second)
	DefaultCacheMaxBytes = Size(16 << 20)
)

// Hosts returns the target's base URLs: URLs, or URL alone.
func (t *Target) Hosts() []string {
	if len(t.URLs) > 0 {
		return t.URLs
	}
	return []string{t.URL}
}

func strategyDefaults(t *Target) {
	t.Balance = or(t.Balance, BalanceRoundRobin)
	t.Eject.Failures = or(t.Eject.Failures, DefaultEjectFailures)
	t.Eject.CoolOff = or(t.Eject.CoolOff, DefaultEjectCoolOff)
}

func cacheDefaults(r *Route) {
	if r.Cache != nil {
		r.Cache.MaxBytes = or(r.Cache.MaxBytes, DefaultCacheMaxBytes)
	}
}

// targetHosts checks url and urls (exactly one), balance and eject.
func (v *validator) targetHosts(p string, t *Target) {
	switch {
	case t.URL != "" && len(t.URLs) > 0:
		v.errf(joinKey(p, "urls"), "set url or urls, not both")
	case len(t.URLs) == 0:
		v.url(joinKey(p, "url"), t.URL)
	default:
		seen := map[string]bool{}
		for i, u := range t.URLs {
			ip := joinIndex(joinKey(p, "urls"), i)
			v.url(ip, u)
			if seen[u] {
				v.errf(ip, "%s is listed twice", v.c.quote(ip, u))
			}
			seen[u] = true
		}
	}
	switch t.Balance {
	case BalanceRoundRobin, BalanceLeastInFlight:
	default:
		v.errf(joinKey(p, "balance"), "unknown balance %s: use round_robin or least_in_flight", v.c.quote(joinKey(p, "balance"), t.Balance))
	}
	if t.Eject.Failures < 1 {
		v.errf(joinKey(joinKey(p, "eject"), "failures"), "failures must be at least 1, got %d", t.Eject.Failures)
	}
	if t.Eject.CoolOff < 0 {
		v.errf(joinKey(joinKey(p, "eject"), "cool_off"), "cool_off must not be negative, got %s", t.Eject.CoolOff)
	}
	v.targetContract(joinKey(p, "contract"), t.Contract)
}

// targetContract loads the target's OpenAPI operation, relative to the
// config file.
func (v *validator) targetContract(p string, c *Contract) {
	if c == nil {
		return
	}
	ok := true
	if c.OpenAPI == "" {
		v.errf(joinKey(p, "openapi"), "openapi is required: the path of the target's OpenAPI document")
		ok = false
	}
	if c.Operation == "" {
		v.errf(joinKey(p, "operation"), "operation is required: the operationId the target serves")
		ok = false
	}
	if !ok {
		return
	}
	file := c.OpenAPI
	if !filepath.IsAbs(file) && v.cfg.File != "" {
		file = filepath.Join(filepath.Dir(v.cfg.File), file)
	}
	op, err := contract.Load(file, c.Operation)
	switch {
	case errors.Is(err, contract.ErrNoOperation):
		v.errf(joinKey(p, "operation"), "%v", err)
	case err != nil:
		v.errf(joinKey(p, "openapi"), "%v", err)
	default:
		c.op = op
	}
}

// stepContract checks a step's (or compensation's) method and body
// template against its target's contract. Everything it finds is an
// error: each would make every request of the step fail.
func (v *validator) stepContract(p, targetName, method string, body any) {
	t := v.cfg.Targets[targetName]
	if t == nil || t.Contract.Op() == nil {
		return
	}
	op := t.Contract.Op()
	if method == "" {
		method = t.Method
	}
	if !strings.EqualFold(method, op.Method) {
		v.errf(joinKey(p, "method"), "the contract's operation %s is %s %s, and the step sends %s", op.ID, op.Method, op.Path, strings.ToUpper(method))
	}
	if body == nil {
		return // forwards the inbound body: checked at run time
	}
	if _, text := body.(string); text {
		return // a text template: checked at run time
	}
	bp := joinKey(p, "body")
	for _, pr := range op.CheckTemplate(body) {
		v.errf(joinPath(bp, pr.Path...), "contract %s: %s", op.ID, pr.Msg)
	}
}

// routeStrategies checks a route's cache and its steps against their
// targets' contracts.
func (v *validator) routeStrategies(p string, r *Route) {
	for j, s := range r.Steps {
		sp := joinIndex(joinKey(p, "steps"), j)
		v.stepContract(sp, s.Target, s.Method, s.Body)
		if s.Compensate != nil {
			v.stepContract(joinKey(sp, "compensate"), s.Compensate.Target, s.Compensate.Method, s.Compensate.Body)
		}
	}
	c := r.Cache
	if c == nil {
		return
	}
	cp := joinKey(p, "cache")
	if r.IsDurable() {
		v.errf(cp, "cache needs a durable: false route (a durable route's answers are its messages)")
	}
	if c.TTL <= 0 {
		v.errf(joinKey(cp, "ttl"), "ttl is required and must be positive, e.g. 30s")
	}
	if c.MaxBytes < 1<<10 {
		v.errf(joinKey(cp, "max_bytes"), "max_bytes must be at least 1KiB, got %d", c.MaxBytes)
	}
	if c.Key == "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		v.errf(joinKey(cp, "key"), "a %s route's answers depend on its body: set key (e.g. \"{{ request.body.id }}\"), or make the route GET", r.Method)
	}
	if c.Key != "" {
		if _, err := template.CompileString(c.Key, &template.Scope{}); err != nil {
			v.errf(joinKey(cp, "key"), "invalid key template: %v", err)
		}
	}
}

// SameTarget reports whether two loaded targets are configured alike
// (their contracts compared by operation and document hash): a reload
// keeps the runner, and its breaker and limiter state, of a target that
// is the same.
func SameTarget(a, b *Target) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Contract, y.Contract = nil, nil
	if !reflect.DeepEqual(x, y) {
		return false
	}
	ca, cb := a.Contract, b.Contract
	if ca == nil || cb == nil {
		return ca == nil && cb == nil
	}
	if ca.OpenAPI != cb.OpenAPI || ca.Operation != cb.Operation {
		return false
	}
	oa, ob := ca.Op(), cb.Op()
	return oa != nil && ob != nil && oa.Hash == ob.Hash
}

// SameRoute reports whether two loaded routes are configured alike.
func SameRoute(a, b *Route) bool { return reflect.DeepEqual(a, b) }
