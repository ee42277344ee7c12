//go:build race

package engine_test

// raceEnabled is true when the tests run under the race detector, which
// slows the pure-Go SQLite store about twentyfold: latency figures then
// say more about the instrumentation than about the engine.
const raceEnabled = true
