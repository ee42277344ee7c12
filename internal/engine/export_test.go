package engine

import "time"

// SetReserveHook makes f see every rate limit token a target takes and
// when its attempt may start, until the returned func is called. Only for
// tests that do not run in parallel.
func SetReserveHook(f func(target string, at time.Time)) (restore func()) {
	testHookReserve.Store(&f)
	return func() { testHookReserve.Store(nil) }
}
