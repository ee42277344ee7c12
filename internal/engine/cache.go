package engine

import (
	"container/list"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/route/template"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// Values of the Tandem-Cache answer header on a cached route.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// CacheHeader is the answer header that says whether a cached route's
// answer came from its cache.
const CacheHeader = "Tandem-Cache"

// cacheOverhead is counted per entry on top of its key and body: the
// entry, its list element and map slot.
const cacheOverhead = 160

// routeCache keeps a durable: false route's merged answers in memory for
// cache.ttl, bounded by cache.max_bytes (least recently used first out).
// Only answers whose every step succeeded are kept, and only while the
// targets' Cache-Control allows (see freshness). Unless cache.shared, the
// caller's credentials are part of the key, so callers never see each
// other's answers. A reload starts every cache empty.
type routeCache struct {
	route    string
	method   string
	path     string
	ttl      time.Duration
	key      *template.String // nil: method, path and sorted query
	shared   bool
	maxBytes int64
	metrics  *telemetry.Metrics

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recently used first
	m       map[string]*list.Element
	bytes   int64
	pending map[string]chan struct{} // keys whose miss is running; closed when it ends
	joined  atomic.Int64             // misses that waited for another's (tests)
}

type cacheEntry struct {
	key     string
	status  int
	body    []byte // the answer as sent
	stored  time.Time
	expires time.Time
	size    int64
}

// newRouteCache builds rc's cache; nil when the route has none. The key
// template was checked at load.
func newRouteCache(rc *config.Route, m *telemetry.Metrics) *routeCache {
	c := rc.Cache
	if c == nil {
		return nil
	}
	rcache := &routeCache{
		route: rc.Name, method: rc.Method, path: rc.Path,
		ttl: c.TTL.D(), shared: c.Shared, maxBytes: int64(c.MaxBytes), metrics: m,
		lru: list.New(), m: map[string]*list.Element{}, pending: map[string]chan struct{}{},
	}
	if rcache.maxBytes <= 0 {
		rcache.maxBytes = int64(config.DefaultCacheMaxBytes)
	}
	if c.Key != "" {
		if t, err := template.CompileString(c.Key, &template.Scope{}); err == nil {
			rcache.key = t
		}
	}
	return rcache
}

// keyOf is the cache key of one request: the route, the key template's
// value (or method, path and sorted query), and, unless shared, who
// called. ok is false when the key template fails for this request: the
// request is then served without the cache.
func (c *routeCache) keyOf(in *Inbound, now time.Time) (string, bool) {
	var b strings.Builder
	b.WriteString(c.route)
	b.WriteByte(0)
	if c.key != nil {
		s, err := c.key.Render(template.NewEnv(&template.Input{Body: in.Body, Header: in.Header, Query: in.Query, Now: now}))
		if err != nil {
			return "", false
		}
		b.WriteString(s)
	} else {
		b.WriteString(c.method + " " + c.path + "?" + in.Query.Encode())
	}
	if !c.shared {
		b.WriteByte(0)
		b.WriteString(in.Caller)
	}
	return b.String(), true
}

// get returns a fresh entry's answer, marked as a hit, or nil.
func (c *routeCache) get(key string, now time.Time) *Answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[key]
	if el == nil {
		return nil
	}
	en := el.Value.(*cacheEntry)
	if !now.Before(en.expires) {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	age := max(0, int(now.Sub(en.stored)/time.Second))
	return &Answer{
		HTTPStatus: en.status,
		Raw:        en.body,
		Header:     http.Header{CacheHeader: {CacheHit}, "Age": {strconv.Itoa(age)}},
	}
}

// put keeps body under key for ttl, dropping the least recently used
// entries past maxBytes. An entry larger than a quarter of the cache is
// not kept.
func (c *routeCache) put(key string, status int, body []byte, now time.Time, ttl time.Duration) {
	size := int64(len(key)+len(body)) + cacheOverhead
	if size > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	if el := c.m[key]; el != nil {
		c.remove(el)
	}
	en := &cacheEntry{key: key, status: status, body: body, stored: now, expires: now.Add(ttl), size: size}
	c.m[key] = c.lru.PushFront(en)
	c.bytes += size
	evicted := 0
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
		evicted++
	}
	bytes := c.bytes
	c.mu.Unlock()
	c.metrics.CacheSize(c.route, bytes, evicted)
}

// remove drops one entry; c.mu is held.
func (c *routeCache) remove(el *list.Element) {
	en := c.lru.Remove(el).(*cacheEntry)
	delete(c.m, en.key)
	c.bytes -= en.size
}

// freshness is what the targets' answers allow a cache: the smallest
// max-age (s-maxage for a shared cache), less their Age; whether any said
// no-store or no-cache, or private.
type freshness struct {
	noStore  bool // no-store or no-cache: never cached (tandem does not revalidate)
	private  bool
	maxAge   time.Duration
	limited  bool // maxAge is set
	sMaxAge  time.Duration
	sLimited bool
}

// freshnessOf reads the Cache-Control and Age of every step's answer.
func freshnessOf(ds []record.Delivery) *freshness {
	f := &freshness{}
	for _, d := range ds {
		h := http.Header(d.ResponseHeaders)
		age := time.Duration(0)
		if a, err := strconv.Atoi(strings.TrimSpace(h.Get("Age"))); err == nil && a > 0 {
			age = time.Duration(a) * time.Second
		}
		for _, v := range h.Values("Cache-Control") {
			for _, dir := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
				val = strings.Trim(strings.TrimSpace(val), `"`)
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "no-store", "no-cache":
					f.noStore = true
				case "private":
					f.private = true
				case "max-age":
					if n, err := strconv.Atoi(val); err == nil {
						d := time.Duration(n)*time.Second - age
						if !f.limited || d < f.maxAge {
							f.maxAge, f.limited = d, true
						}
					}
				case "s-maxage":
					if n, err := strconv.Atoi(val); err == nil {
						d := time.Duration(n)*time.Second - age
						if !f.sLimited || d < f.sMaxAge {
							f.sMaxAge, f.sLimited = d, true
						}
					}
				}
			}
		}
	}
	return f
}

// ttlFor is how long the cache may keep an answer with freshness f: the
// route's ttl, lowered by max-age (s-maxage first when shared); 0 when it
// must not be kept.
func (c *routeCache) ttlFor(f *freshness) time.Duration {
	if f == nil {
		return c.ttl
	}
	if f.noStore || (f.private && c.shared) {
		return 0
	}
	ttl := c.ttl
	switch {
	case c.shared && f.sLimited:
		ttl = min(ttl, f.sMaxAge)
	case f.limited:
		ttl = min(ttl, f.maxAge)
	}
	return max(ttl, 0)
}

// join waits for a miss of key already running, if there is one, and
// then reports true; with none running it registers this one and returns
// done, which the caller must call when its miss has ended.
func (c *routeCache) join(ctx context.Context, key string) (joined bool, done func(), err error) {
	c.mu.Lock()
	ch := c.pending[key]
	if ch == nil {
		ch = make(chan struct{})
		c.pending[key] = ch
		c.mu.Unlock()
		return false, func() {
			c.mu.Lock()
			delete(c.pending, key)
			c.mu.Unlock()
			close(ch)
		}, nil
	}
	c.mu.Unlock()
	c.joined.Add(1)
	select {
	case <-ch:
		return true, func() {}, nil
	case <-ctx.Done():
		return true, func() {}, ctx.Err()
	}
}

// fanOutCached serves a durable: false route through its cache, if it
// has one: a fresh answer comes back at once (Tandem-Cache: hit, with
// Age), else the fan-out runs (Tandem-Cache: miss) and an answer whose
// every step succeeded is kept. Concurrent misses of one key are
// collapsed: the first runs, the others wait for it and take its answer
// from the cache (a hit); when it was not kept (a failure, no-store),
// each runs its own. A request with an Idempotency-Key is never
// collapsed (its key must be remembered with its own answer).
func (e *Engine) fanOutCached(ctx context.Context, rp *routePlan, in *Inbound) (*Answer, error) {
	c := rp.cache
	if c == nil {
		return e.fanOutOnce(ctx, rp, in)
	}
	now := e.opts.Now()
	key, ok := c.keyOf(in, now)
	if !ok {
		return e.fanOutOnce(ctx, rp, in)
	}
	if ans := c.get(key, now); ans != nil {
		e.metrics.CacheResult(c.route, true)
		return ans, nil
	}
	if in.IdempotencyKey == "" {
		joined, done, err := c.join(ctx, key)
		if err != nil {
			return nil, err
		}
		defer done()
		if joined {
			if ans := c.get(key, e.opts.Now()); ans != nil {
				e.metrics.CacheResult(c.route, true)
				return ans, nil
			}
		}
	}
	e.metrics.CacheResult(c.route, false)
	ans, err := e.fanOutOnce(ctx, rp, in)
	if err != nil || ans == nil {
		return ans, err
	}
	if ans.Header == nil {
		ans.Header = http.Header{}
	}
	ans.Header.Set(CacheHeader, CacheMiss)
	if ans.Repeat || ans.Body == nil || ans.Body.Status != record.MessageSucceeded || ans.HTTPStatus < 200 || ans.HTTPStatus > 299 {
		return ans, nil
	}
	ttl := c.ttlFor(ans.fresh)
	if ttl <= 0 {
		return ans, nil
	}
	body := []byte(ans.Raw)
	if len(body) == 0 {
		if body, err = json.Marshal(ans.Body); err != nil {
			return ans, nil
		}
	}
	c.put(key, ans.HTTPStatus, body, now, ttl)
	return ans, nil
}
