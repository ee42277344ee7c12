package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// Error kinds: what went wrong with an attempt.
const (
	// KindConnect: no connection could be made (refused, unreachable, DNS).
	// Transient.
	KindConnect = "connect"
	// KindTimeout: the connect or total timeout passed. Transient.
	KindTimeout = "timeout"
	// KindReset: the connection broke after it was made (reset, closed by
	// the peer before the answer was complete). Transient.
	KindReset = "reset"
	// KindTLS: the TLS handshake failed (untrusted or invalid certificate,
	// a peer that does not speak TLS, a TLS alert). Permanent.
	KindTLS = "tls"
	// KindURL: the URL is invalid or not http/https. Permanent.
	KindURL = "url"
	// KindRequest: the request cannot be built (bad method or header).
	// Permanent.
	KindRequest = "request"
	// KindStatus: the target answered with a status that is not a success.
	// Transient or permanent by status (see Classify).
	KindStatus = "status"
	// KindCanceled: the caller's context ended (shutdown, or the caller's
	// own deadline) before the attempt finished. Transient.
	KindCanceled = "canceled"
	// KindAuth: the target's OAuth2 credentials failed: the token
	// endpoint could not be reached or refused, or the target refused a
	// cached access token (which is then dropped). Transient: a token
	// endpoint comes back, and the next attempt fetches a fresh token.
	KindAuth = "auth"
	// KindOther: any other transport failure (e.g. a malformed response).
	// Transient.
	KindOther = "other"
)

// Error is the failure of one attempt. Its message names the fault, e.g.
// "connect: connection refused", "timeout after 10s", "status 503 Service
// Unavailable", so a dead letter's reason is clear.
type Error struct {
	// Kind is one of the Kind constants.
	Kind string
	// Status is the HTTP status when Kind is KindStatus, else 0.
	Status int
	// Err is the underlying error, if any.
	Err error

	msg string
}

// Error returns the human message.
func (e *Error) Error() string {
	switch {
	case e.msg != "":
		return e.msg
	case e.Kind == KindStatus:
		return statusMessage(e.Status, "")
	case e.Err != nil:
		return e.Kind + ": " + e.Err.Error()
	}
	return e.Kind
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Outcome is the class of this failure alone (see Classify).
func (e *Error) Outcome() record.Outcome {
	if e.Kind == KindStatus {
		return classifyStatus(e.Status, nil)
	}
	return kindOutcome(e.Kind)
}

// Classify returns the outcome class of one attempt:
//
//   - success: no error, and status 2xx or one of success;
//   - transient: connection errors, timeouts, resets, cancellation by the
//     caller, and the statuses 408, 425, 429 and 5xx;
//   - permanent: every other status (3xx, other 4xx), an invalid URL or
//     request, and TLS failures (e.g. an untrusted certificate).
//
// A non-nil err decides the class even when a status came with it (a body
// that broke off mid-read after a 200 is transient). A status listed in
// success is a success even if it is 4xx or 5xx. Errors that are not
// *Error are classified by what they wrap; unknown ones are transient, so a
// fault never seen before is retried within the budget rather than lost.
func Classify(status int, err error, success []int) record.Outcome {
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			if te.Kind == KindStatus {
				if te.Status != 0 {
					status = te.Status
				}
				return classifyStatus(status, success)
			}
			return kindOutcome(te.Kind)
		}
		kind, _ := kindOf(err)
		return kindOutcome(kind)
	}
	return classifyStatus(status, success)
}

func classifyStatus(status int, success []int) record.Outcome {
	for _, s := range success {
		if s == status {
			return record.OutcomeSuccess
		}
	}
	switch {
	case status >= 200 && status <= 299:
		return record.OutcomeSuccess
	case status == 0:
		// No answer at all: nothing says the target refused the request.
		return record.OutcomeTransient
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500 && status <= 599:
		return record.OutcomeTransient
	}
	return record.OutcomePermanent
}

func kindOutcome(kind string) record.Outcome {
	switch kind {
	case KindTLS, KindURL, KindRequest:
		return record.OutcomePermanent
	}
	return record.OutcomeTransient
}

// statusMessage is the reason for a failed status: "status 503 Service
// Unavailable", and for redirects where to.
func statusMessage(status int, location string) string {
	msg := fmt.Sprintf("status %d", status)
	if text := http.StatusText(status); text != "" {
		msg += " " + text
	}
	if location != "" {
		msg += " (to " + location + ")"
	}
	return msg
}

// connectTimeoutError is what the dialers return when the connect timeout
// passes, so the message can say which timeout it was.
type connectTimeoutError struct{ after time.Duration }

func (e *connectTimeoutError) Error() string {
	return "connect timeout after " + e.after.String()
}
func (e *connectTimeoutError) Timeout() bool   { return true }
func (e *connectTimeoutError) Temporary() bool { return true }

// kindOf names the kind of a transport error and a short human detail.
func kindOf(err error) (kind, detail string) {
	var cte *connectTimeoutError
	if errors.As(err, &cte) {
		return KindTimeout, cte.Error()
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled, "canceled"
	}
	if k, d := tlsKind(err); k != "" {
		return k, d
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
			syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.EADDRNOTAVAIL:
			return KindConnect, "connect: " + errno.Error()
		case syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE:
			return KindReset, errno.Error()
		case syscall.ETIMEDOUT:
			return KindTimeout, errno.Error()
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsTimeout {
			return KindTimeout, "connect: " + dnsErr.Error()
		}
		return KindConnect, "connect: " + dnsErr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout, "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout, "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return KindReset, "connection closed by peer"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return KindConnect, "connect: " + op.Err.Error()
	}
	return KindOther, err.Error()
}

// tlsKind recognises handshake failures: certificate problems, a peer that
// does not speak TLS, and TLS alerts.
func tlsKind(err error) (kind, detail string) {
	var (
		verr    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		roots   x509.SystemRootsError
		header  tls.RecordHeaderError
		alert   tls.AlertError
		ecHello *tls.ECHRejectionError
		load    *tlsLoadError
	)
	switch {
	case errors.As(err, &load):
		return KindTLS, load.Error()
	case errors.As(err, &verr):
		return KindTLS, verr.Error()
	case errors.As(err, &unknown):
		return KindTLS, "tls: " + unknown.Error()
	case errors.As(err, &host):
		return KindTLS, "tls: " + host.Error()
	case errors.As(err, &invalid):
		return KindTLS, "tls: " + invalid.Error()
	case errors.As(err, &roots):
		return KindTLS, "tls: " + roots.Error()
	case errors.As(err, &header):
		return KindTLS, "tls: the server does not speak TLS"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http turns a RecordHeaderError into this untyped error when
		// the first bytes look like HTTP.
		return KindTLS, "tls: the server does not speak TLS (it answered in plain HTTP)"
	case errors.As(err, &alert):
		return KindTLS, "tls: alert: " + alert.Error()
	case errors.As(err, &ecHello):
		return KindTLS, ecHello.Error()
	case strings.Contains(err.Error(), "remote error: tls: "):
		// The server sent an alert, e.g. it refused tandem's client
		// certificate (mutual TLS): no retry makes it accept.
		msg := err.Error()
		return KindTLS, "tls: the server refused the handshake: " + msg[strings.Index(msg, "remote error: tls: ")+len("remote error: tls: "):]
	}
	return "", ""
}
