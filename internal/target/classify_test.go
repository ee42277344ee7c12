package target

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name    string
		status  int
		err     error
		success []int
		want    record.Outcome
	}{
		{"200", 200, nil, nil, record.OutcomeSuccess},
		{"201", 201, nil, nil, record.OutcomeSuccess},
		{"204", 204, nil, nil, record.OutcomeSuccess},
		{"299", 299, nil, nil, record.OutcomeSuccess},
		{"301", 301, nil, nil, record.OutcomePermanent},
		{"304", 304, nil, nil, record.OutcomePermanent},
		{"400", 400, nil, nil, record.OutcomePermanent},
		{"401", 401, nil, nil, record.OutcomePermanent},
		{"404", 404, nil, nil, record.OutcomePermanent},
		{"408", 408, nil, nil, record.OutcomeTransient},
		{"409", 409, nil, nil, record.OutcomePermanent},
		{"409 listed", 409, nil, []int{409}, record.OutcomeSuccess},
		{"422", 422, nil, nil, record.OutcomePermanent},
		{"425", 425, nil, nil, record.OutcomeTransient},
		{"429", 429, nil, nil, record.OutcomeTransient},
		{"500", 500, nil, nil, record.OutcomeTransient},
		{"502", 502, nil, nil, record.OutcomeTransient},
		{"503", 503, nil, nil, record.OutcomeTransient},
		{"504", 504, nil, nil, record.OutcomeTransient},
		{"503 listed", 503, nil, []int{503}, record.OutcomeSuccess},
		{"600", 600, nil, nil, record.OutcomePermanent},
		{"no status no error", 0, nil, nil, record.OutcomeTransient},
		{"refused", 0, refused, nil, record.OutcomeTransient},
		{"reset", 0, reset, nil, record.OutcomeTransient},
		{"eof", 0, io.EOF, nil, record.OutcomeTransient},
		{"unexpected eof after 200", 200, io.ErrUnexpectedEOF, nil, record.OutcomeTransient},
		{"deadline", 0, context.DeadlineExceeded, nil, record.OutcomeTransient},
		{"canceled", 0, context.Canceled, nil, record.OutcomeTransient},
		{"dns", 0, &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, nil, record.OutcomeTransient},
		{"unknown authority", 0, x509.UnknownAuthorityError{}, nil, record.OutcomePermanent},
		{"hostname", 0, x509.HostnameError{Certificate: &x509.Certificate{}, Host: "a"}, nil, record.OutcomePermanent},
		{"expired", 0, x509.CertificateInvalidError{Reason: x509.Expired}, nil, record.OutcomePermanent},
		{"verification", 0, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, nil, record.OutcomePermanent},
		{"not tls", 0, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, nil, record.OutcomePermanent},
		{"wrapped tls", 0, fmt.Errorf("post: %w", x509.UnknownAuthorityError{}), nil, record.OutcomePermanent},
		{"unknown error", 0, errors.New("something odd"), nil, record.OutcomeTransient},
		{"Error url", 0, &Error{Kind: KindURL}, nil, record.OutcomePermanent},
		{"Error request", 0, &Error{Kind: KindRequest}, nil, record.OutcomePermanent},
		{"Error tls", 0, &Error{Kind: KindTLS}, nil, record.OutcomePermanent},
		{"Error connect", 0, &Error{Kind: KindConnect}, nil, record.OutcomeTransient},
		{"Error timeout", 0, &Error{Kind: KindTimeout}, nil, record.OutcomeTransient},
		{"Error canceled", 0, &Error{Kind: KindCanceled}, nil, record.OutcomeTransient},
		{"Error status 503", 503, &Error{Kind: KindStatus, Status: 503}, nil, record.OutcomeTransient},
		{"Error status 404", 404, &Error{Kind: KindStatus, Status: 404}, nil, record.OutcomePermanent},
		{"Error status 404 listed", 404, &Error{Kind: KindStatus, Status: 404}, []int{404}, record.OutcomeSuccess},
		{"Error status takes status arg", 429, &Error{Kind: KindStatus}, nil, record.OutcomeTransient},
		{"connect timeout", 0, &connectTimeoutError{after: time.Second}, nil, record.OutcomeTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.status, tt.err, tt.success); got != tt.want {
				t.Errorf("Classify(%d, %v, %v) = %s, want %s", tt.status, tt.err, tt.success, got, tt.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		kind, text string
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, KindConnect, "connect: connection refused"},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, KindReset, "connection reset by peer"},
		{"broken pipe", os.NewSyscallError("write", syscall.EPIPE), KindReset, "broken pipe"},
		{"eof", io.EOF, KindReset, "connection closed by peer"},
		{"dns", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, KindConnect, "connect: lookup x.invalid: no such host"},
		{"connect timeout", &connectTimeoutError{after: 2 * time.Second}, KindTimeout, "connect timeout after 2s"},
		{"canceled", fmt.Errorf("do: %w", context.Canceled), KindCanceled, "canceled"},
		{"not tls", tls.RecordHeaderError{}, KindTLS, "tls: the server does not speak TLS"},
		{"other", errors.New("malformed HTTP response"), KindOther, "malformed HTTP response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, text := kindOf(tt.err)
			if kind != tt.kind || text != tt.text {
				t.Errorf("kindOf(%v) = %q, %q; want %q, %q", tt.err, kind, text, tt.kind, tt.text)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"status", &Error{Kind: KindStatus, Status: 503}, "status 503 Service Unavailable"},
		{"unknown status", &Error{Kind: KindStatus, Status: 599}, "status 599"},
		{"with err", &Error{Kind: KindConnect, Err: errors.New("boom")}, "connect: boom"},
		{"bare", &Error{Kind: KindTimeout}, "timeout"},
		{"msg", &Error{Kind: KindTimeout, msg: "timeout after 10s"}, "timeout after 10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	inner := errors.New("inner")
	if e := (&Error{Kind: KindOther, Err: inner}); !errors.Is(e, inner) {
		t.Error("Error does not unwrap to its cause")
	}
}
