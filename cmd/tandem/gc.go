package main

import "runtime/debug"

// serveGCPercent is the garbage collector's target for `tandem serve`
// when GOGC is not set.
//
// The gateway's live heap is small (about 10 MiB under load: the
// messages in flight, the connection buffers) and it allocates fast (the
// request bodies, the JSON of every answer and store row), so Go's
// default of 100 runs a collection every few MiB allocated: 6–8% of the
// process's CPU in the bench's profiles. At 400 the heap may grow to five
// times the live set before a collection, some 40 MiB more resident
// memory, for a quarter of the collections. GOGC (and GOMEMLIMIT) set in
// the environment win, as for any Go program.
const serveGCPercent = 400

// serveMemoryLimit is the soft limit on the Go runtime's memory for
// `tandem serve` when GOMEMLIMIT is not set: near it the collector runs
// as often as the default would, so the higher GOGC cannot let a burst
// (thousands of requests in flight) grow the heap, and the process's
// resident memory, fivefold (bench P5). SQLite's page cache is outside it.
// Measured: at 80 MiB the collector ran often enough under overload (bench
// P3b, more offered than delivered) to cut what got delivered by a fifth
// (1,165 against 1,413 deliveries/s); the writer's smaller page cache
// (sqlite.go) brought P5 under 150 MiB instead.
const serveMemoryLimit = 96 << 20

// tuneGC applies serveGCPercent and serveMemoryLimit unless the
// environment sets GOGC or GOMEMLIMIT.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
}
