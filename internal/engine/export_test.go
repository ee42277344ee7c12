package engine

import "time"

// SetReserveHook makes f see every rate limit token a target takes and
// when its attempt may start, until the returned func is called. Only for
// tests that do not run in parallel.
func SetReserveHook(f func(target string, at time.Time)) (restore func()) {
	testHookReserve.Store(&f)
	return func() { testHookReserve.Store(nil) }
}

// CacheJoined counts the misses of a route's cache that waited for
// another request's miss of the same key.
func CacheJoined(e *Engine, route string) int64 {
	return e.cur().routes[route].cache.joined.Load()
}
