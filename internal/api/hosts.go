package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/target"
)

// hostsOf is the view of a target's hosts (nil for a single url).
func hostsOf(hs []target.HostSnapshot) []tapi.Host {
	if len(hs) == 0 {
		return nil
	}
	out := make([]tapi.Host, len(hs))
	for i, h := range hs {
		out[i] = tapi.Host{URL: redactURL(h.URL), State: h.State, InFlight: h.InFlight, Failures: h.Failures,
			Attempts: h.Attempts, Ejections: h.Ejections}
		if !h.EjectedUntil.IsZero() {
			t := h.EjectedUntil
			out[i].EjectedUntil = &t
		}
	}
	return out
}

// redactHosts shows each host's URL as the redacted config has it, so a
// URL built from ${env:} or ${file:} is hidden whole, as url is.
func redactHosts(v *tapi.Target, t *config.Target) {
	if t == nil || len(t.URLs) != len(v.Hosts) {
		return
	}
	for i := range v.Hosts {
		v.Hosts[i].URL = redactURL(t.URLs[i])
	}
}

// callerOf identifies a caller by its credentials: a digest of every
// credential header it sent (the headers the engine never sees), "" when
// it sent none. Two callers share a route's cached answers only when
// their credentials are the same, or the cache is shared.
func callerOf(h http.Header) string {
	sum := sha256.New()
	any := false
	for _, name := range strippedHeaders {
		for _, v := range h.Values(name) {
			any = true
			sum.Write([]byte(name))
			sum.Write([]byte{0})
			sum.Write([]byte(v))
			sum.Write([]byte{0})
		}
	}
	if !any {
		return ""
	}
	return hex.EncodeToString(sum.Sum(nil)[:16])
}
