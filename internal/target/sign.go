package target

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signer adds a signature to one request. id is the request's
// Idempotency-Key ("{message_id}.{step}", the same across retries), body
// the exact bytes sent, and now the attempt's time: every attempt is
// signed anew.
type Signer interface {
	Sign(h http.Header, id string, body []byte, now time.Time)
}

// Standard Webhooks header names (https://www.standardwebhooks.com/).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// ErrSecret reports a signing secret that cannot be used.
var ErrSecret = errors.New("invalid signing secret")

// StandardWebhooks signs as the Standard Webhooks spec says: webhook-id,
// webhook-timestamp (unix seconds) and webhook-signature "v1,<base64
// HMAC-SHA256 of id.timestamp.body>", one signature per secret,
// space-separated, so a receiver can rotate secrets without a gap.
type StandardWebhooks struct {
	keys [][]byte
}

// NewStandardWebhooks decodes secrets written "whsec_<base64>" (the
// prefix is optional, as in the spec's libraries).
func NewStandardWebhooks(secrets []string) (*StandardWebhooks, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret", ErrSecret)
	}
	s := &StandardWebhooks{}
	for i, sec := range secrets {
		key, err := DecodeWebhookSecret(sec)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

// DecodeWebhookSecret decodes a "whsec_<base64>" secret into its key. The
// error never contains the secret.
func DecodeWebhookSecret(sec string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
	if err != nil {
		return nil, fmt.Errorf("%w: not \"whsec_\" followed by base64", ErrSecret)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("%w: the key is %d bytes; use at least 16 (24 to 64 is usual)", ErrSecret, len(key))
	}
	return key, nil
}

// Sign sets the three Standard Webhooks headers.
func (s *StandardWebhooks) Sign(h http.Header, id string, body []byte, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sigs := make([]string, 0, len(s.keys))
	for _, key := range s.keys {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	h[HeaderWebhookID] = []string{id}
	h[HeaderWebhookTimestamp] = []string{ts}
	h[HeaderWebhookSignature] = []string{strings.Join(sigs, " ")}
}

// HMAC algorithms and encodings.
const (
	AlgSHA256   = "sha256"
	AlgSHA512   = "sha512"
	EncHex      = "hex"
	EncBase64   = "base64"
	FormatPlain = "plain"
	// FormatStripe writes "t=<unix>,v1=<signature>" and signs
	// "<unix>.<body>", as Stripe does.
	FormatStripe = "stripe"
)

// HMACOptions configure an HMAC signature header, GitHub style
// ("X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(body)>") or Stripe
// style.
type HMACOptions struct {
	// Secret is the raw key. Required.
	Secret string
	// Header receives the signature. Required.
	Header string
	// Algorithm is sha256 or sha512. Default sha256.
	Algorithm string
	// Encoding is hex or base64. Default hex.
	Encoding string
	// Prefix goes before the signature, e.g. "sha256=". Default none.
	Prefix string
	// Format is plain (HMAC of the body) or stripe. Default plain.
	Format string
}

// HMACSigner signs the body with HMAC into one header.
type HMACSigner struct {
	key    []byte
	header string
	hash   func() hash.Hash
	b64    bool
	prefix string
	stripe bool
}

// NewHMAC checks o and builds the signer.
func NewHMAC(o HMACOptions) (*HMACSigner, error) {
	s := &HMACSigner{key: []byte(o.Secret), header: http.CanonicalHeaderKey(o.Header), prefix: o.Prefix}
	if o.Secret == "" {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	if !validHeaderName(o.Header) {
		return nil, fmt.Errorf("hmac: header %q is not a header name", o.Header)
	}
	switch o.Algorithm {
	case "", AlgSHA256:
		s.hash = sha256.New
	case AlgSHA512:
		s.hash = sha512.New
	default:
		return nil, fmt.Errorf("hmac: unknown algorithm %q: use sha256 or sha512", o.Algorithm)
	}
	switch o.Encoding {
	case "", EncHex:
	case EncBase64:
		s.b64 = true
	default:
		return nil, fmt.Errorf("hmac: unknown encoding %q: use hex or base64", o.Encoding)
	}
	switch o.Format {
	case "", FormatPlain:
	case FormatStripe:
		s.stripe = true
	default:
		return nil, fmt.Errorf("hmac: unknown format %q: use plain or stripe", o.Format)
	}
	return s, nil
}

// Sign sets the signature header.
func (s *HMACSigner) Sign(h http.Header, _ string, body []byte, now time.Time) {
	m := hmac.New(s.hash, s.key)
	ts := ""
	if s.stripe {
		ts = strconv.FormatInt(now.Unix(), 10)
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
	}
	m.Write(body)
	sum := m.Sum(nil)
	var sig string
	if s.b64 {
		sig = base64.StdEncoding.EncodeToString(sum)
	} else {
		sig = hex.EncodeToString(sum)
	}
	if s.stripe {
		sig = "t=" + ts + ",v1=" + sig
	}
	h.Set(s.header, s.prefix+sig)
}

// randomID names a signed request sent without an Idempotency-Key.
func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}
