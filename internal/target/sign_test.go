package target

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	whsecA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whsecB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// TestStandardWebhooksVerifiedBySpecLibrary signs with tandem and verifies
// with the Standard Webhooks authors' own Go library, on the bytes the
// target received.
func TestStandardWebhooksVerifiedBySpecLibrary(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	signer, err := NewStandardWebhooks([]string{whsecA, whsecB})
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	c := NewCaller(CallerOptions{Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	ep := &Endpoint{URL: rec.srv.URL + "/hook", Sign: []Signer{signer}}
	body := []byte(`{"order":42,"note":"naïve ☃"}`)
	var first seen
	for attempt := range 2 {
		res := c.Do(context.Background(), &Request{Endpoint: ep, Body: body, IdempotencyKey: "01HX.charge"})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		got := <-rec.reqs
		if id := got.Header.Get("webhook-id"); id != "01HX.charge" {
			t.Fatalf("webhook-id %q, want the idempotency key", id)
		}
		sigs := strings.Fields(got.Header.Get("webhook-signature"))
		if len(sigs) != 2 {
			t.Fatalf("webhook-signature %q: want two signatures (two secrets)", got.Header.Get("webhook-signature"))
		}
		// Each secret alone verifies: a receiver may hold either one.
		for _, sec := range []string{whsecA, whsecB} {
			wh, err := standardwebhooks.NewWebhook(sec)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(got.Body, got.Header); err != nil {
				t.Fatalf("attempt %d, secret %s: the spec's library refuses tandem's signature: %v", attempt, sec[:10], err)
			}
		}
		wrong, _ := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte("another secret entirely!")))
		if err := wrong.Verify(got.Body, got.Header); err == nil {
			t.Fatal("a different secret verified the signature")
		}
		if err := mustVerify(t, whsecA).Verify(append(got.Body, ' '), got.Header); err == nil {
			t.Fatal("a changed body verified")
		}
		if attempt == 0 {
			first = got
			clock.Add(7) // the retry comes later
			continue
		}
		// A retry keeps the webhook-id and is signed anew.
		if got.Header.Get("webhook-id") != first.Header.Get("webhook-id") {
			t.Error("the retry changed webhook-id")
		}
		ts0, _ := strconv.ParseInt(first.Header.Get("webhook-timestamp"), 10, 64)
		ts1, _ := strconv.ParseInt(got.Header.Get("webhook-timestamp"), 10, 64)
		if ts1-ts0 != 7 {
			t.Errorf("timestamps %d then %d: want a fresh one per attempt", ts0, ts1)
		}
		if got.Header.Get("webhook-signature") == first.Header.Get("webhook-signature") {
			t.Error("the retry reused the signature")
		}
	}
}

func mustVerify(t *testing.T, sec string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(sec)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func TestStandardWebhooksSecrets(t *testing.T) {
	t.Parallel()
	for _, sec := range []string{"", "whsec_not base64!", "whsec_c2hvcnQ="} {
		if _, err := NewStandardWebhooks([]string{sec}); err == nil {
			t.Errorf("secret %q accepted", sec)
		} else if sec != "" && strings.Contains(err.Error(), sec) {
			t.Errorf("error %q shows the secret", err)
		}
	}
	if _, err := NewStandardWebhooks(nil); err == nil {
		t.Error("no secret accepted")
	}
	// The prefix is optional, as in the spec's libraries.
	if _, err := NewStandardWebhooks([]string{strings.TrimPrefix(whsecA, "whsec_")}); err != nil {
		t.Error(err)
	}
}

// TestHMACSignatures checks each form against an HMAC computed here from
// the bytes the target received.
func TestHMACSignatures(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	now := time.Unix(1_700_000_000, 0)
	c := NewCaller(CallerOptions{Now: func() time.Time { return now }})
	sum := func(alg string, msg []byte) []byte {
		m := hmac.New(sha256.New, []byte("s3cret"))
		if alg == "sha512" {
			m = hmac.New(sha512.New, []byte("s3cret"))
		}
		m.Write(msg)
		return m.Sum(nil)
	}
	body := []byte(`{"a":1}`)
	tests := []struct {
		name   string
		opts   HMACOptions
		header string
		want   func(b []byte) string
	}{
		{"github", HMACOptions{Secret: "s3cret", Header: "X-Hub-Signature-256", Prefix: "sha256="}, "X-Hub-Signature-256",
			func(b []byte) string { return "sha256=" + hex.EncodeToString(sum("sha256", b)) }},
		{"sha512 base64", HMACOptions{Secret: "s3cret", Header: "X-Sig", Algorithm: AlgSHA512, Encoding: EncBase64}, "X-Sig",
			func(b []byte) string { return base64.StdEncoding.EncodeToString(sum("sha512", b)) }},
		{"stripe", HMACOptions{Secret: "s3cret", Header: "Stripe-Signature", Format: FormatStripe}, "Stripe-Signature",
			func(b []byte) string {
				return "t=1700000000,v1=" + hex.EncodeToString(sum("sha256", append([]byte("1700000000."), b...)))
			}},
	}
	for _, tt := range tests {
		s, err := NewHMAC(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, Sign: []Signer{s}}, Body: body})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		got := <-rec.reqs
		if g, w := got.Header.Get(tt.header), tt.want(got.Body); g != w {
			t.Errorf("%s: %s = %q, want %q", tt.name, tt.header, g, w)
		}
	}
	for _, bad := range []HMACOptions{
		{Header: "X"}, {Secret: "k", Header: "bad header"}, {Secret: "k", Header: "X", Algorithm: "md5"},
		{Secret: "k", Header: "X", Encoding: "base32"}, {Secret: "k", Header: "X", Format: "svix"},
	} {
		if _, err := NewHMAC(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// BenchmarkSignOnly is the cost of signing alone, without the call.
func BenchmarkSignOnly(b *testing.B) {
	sw, _ := NewStandardWebhooks([]string{whsecA})
	body := []byte(strings.Repeat(`{"k":"v"},`, 100))
	now := time.Now()
	for b.Loop() {
		sw.Sign(http.Header{}, "m.s", body, now)
	}
}

// BenchmarkSignRatio times a call to a local target unsigned, signed with
// Standard Webhooks and with an HMAC header, interleaved in one loop, and
// reports the signed calls' cost as ratios to the unsigned one.
func BenchmarkSignRatio(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c := NewCaller(CallerOptions{})
	sw, _ := NewStandardWebhooks([]string{whsecA})
	sw2, _ := NewStandardWebhooks([]string{whsecA, whsecB})
	gh, _ := NewHMAC(HMACOptions{Secret: "s3cret", Header: "X-Hub-Signature-256", Prefix: "sha256="})
	body := []byte(strings.Repeat(`{"k":"v"},`, 100)) // 1 KB
	variants := []struct {
		name string
		sign []Signer
	}{{"unsigned", nil}, {"standard_webhooks", []Signer{sw}}, {"standard_webhooks_2_secrets", []Signer{sw2}}, {"hmac", []Signer{gh}}}
	spent := make([]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			ep := &Endpoint{URL: srv.URL, Sign: v.sign}
			start := time.Now()
			if res := c.Do(context.Background(), &Request{Endpoint: ep, Body: body, IdempotencyKey: "m.s"}); res.Err != nil {
				b.Fatal(res.Err)
			}
			spent[i] += time.Since(start)
		}
	}
	for i, v := range variants {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), "ns_"+v.name)
		if i > 0 {
			b.ReportMetric(float64(spent[i])/float64(spent[0]), "x_"+v.name)
		}
	}
}
