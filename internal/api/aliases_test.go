package api

import tapi "github.com/tandem-run/tandem/api"

// The tests were written against the server's own view types; these names
// keep them reading as they did now that the types live in package api.
type (
	deadLetter   = tapi.DeadLetter
	targetView   = tapi.Target
	replayResult = tapi.ReplayResult
)
