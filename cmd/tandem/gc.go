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

// tuneGC applies serveGCPercent unless the environment sets GOGC.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}
