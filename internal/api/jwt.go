package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/tandem-run/tandem/internal/config"
)

// JWKS fetching limits.
const (
	// jwksFetchTimeout bounds one fetch of the JWKS URL, and how long a
	// request with an unknown kid may wait for the refresh it triggers.
	jwksFetchTimeout = 5 * time.Second
	// maxToken bounds a bearer token's length before any parsing.
	maxToken = 16 << 10
)

// asymmetricAlgs are the JWS algorithms accepted with keys from a JWKS.
// HS256 is accepted only with hs256_secret, never with a JWKS key, so an
// RSA public key can never be used as an HMAC secret ("alg confusion").
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwtOptions are what a jwtVerifier needs besides its config.
type jwtOptions struct {
	// Ctx ends the JWKS refresh goroutine. Default context.Background().
	Ctx context.Context
	// Logger gets JWKS fetch failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for exp, nbf and iat. Default time.Now.
	Now func() time.Time
	// HTTPClient fetches the JWKS URL. Default a client with a 5s timeout.
	HTTPClient *http.Client
}

// jwtVerifier checks bearer JWTs (auth.jwt): signature, alg, exp/nbf with
// leeway, issuer, audience; it reads the subject and the scopes claim.
type jwtVerifier struct {
	parser      *jwt.Parser
	hs256       []byte
	jwks        keyfunc.Keyfunc // nil without jwks_file and jwks_url
	file        *jwksFile       // nil without jwks_file
	scopesClaim string
}

// jwksFile is a JWK Set read from a file, read again when the file changes
// (checked at most once a second, on a token's arrival). A rewrite that
// does not parse keeps the last good set.
type jwksFile struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex
	kf      keyfunc.Keyfunc
	mod     time.Time
	size    int64
	checked time.Time
}

func loadJWKSFile(path string, now func() time.Time, log *slog.Logger) (*jwksFile, error) {
	f := &jwksFile{path: path, now: now, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.jwks_file: %w", err)
	}
	if err := f.load(fi); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *jwksFile) load(fi os.FileInfo) error {
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("auth.jwt.jwks_file: %w", err)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return fmt.Errorf("auth.jwt.jwks_file %s: not a JWK Set", f.path)
	}
	f.kf, f.mod, f.size = kf, fi.ModTime(), fi.Size()
	return nil
}

// current returns the key set, reloading the file when it changed.
func (f *jwksFile) current() keyfunc.Keyfunc {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.checked) < time.Second {
		return f.kf
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil || (fi.ModTime().Equal(f.mod) && fi.Size() == f.size) {
		return f.kf
	}
	if err := f.load(fi); err != nil {
		f.log.Warn("reload JWKS file failed; keeping the last good key set", "error", err)
	}
	return f.kf
}

// newJWTVerifier builds the verifier. A JWKS URL that cannot be fetched at
// start is not an error: it is logged, and fetched again on the first
// token with an unknown kid and on every refresh interval.
func newJWTVerifier(cfg *config.JWT, o jwtOptions) (*jwtVerifier, error) {
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: jwksFetchTimeout}
	}
	v := &jwtVerifier{scopesClaim: cfg.ScopesClaim}
	if v.scopesClaim == "" {
		v.scopesClaim = config.DefaultScopesClaim
	}
	var methods []string
	if cfg.HS256Secret != "" {
		v.hs256 = []byte(cfg.HS256Secret)
		methods = append(methods, "HS256")
	}
	switch {
	case cfg.JWKSFile != "":
		f, err := loadJWKSFile(cfg.JWKSFile, o.Now, o.Logger)
		if err != nil {
			return nil, err
		}
		v.file, v.jwks = f, f.kf
	case cfg.JWKSURL != "":
		refresh := cfg.JWKSRefresh.D()
		if refresh <= 0 {
			refresh = config.DefaultJWKSRefresh.D()
		}
		minRefresh := cfg.JWKSMinRefresh.D()
		if minRefresh <= 0 {
			minRefresh = config.DefaultJWKSMinRefresh.D()
		}
		log := o.Logger
		kf, err := keyfunc.NewDefaultOverrideCtx(o.Ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:      o.HTTPClient,
			HTTPTimeout: jwksFetchTimeout,
			// A failed fetch keeps the last good set (jwkset replaces
			// the keys only after a whole set decoded).
			RefreshInterval: refresh,
			// A token with an unknown kid triggers a fetch at most once
			// per minRefresh; the others fail at once, unless the next
			// fetch is due within jwksFetchTimeout (then they wait for it).
			RefreshUnknownKID: rate.NewLimiter(rate.Every(minRefresh), 1),
			RateLimitWaitMax:  jwksFetchTimeout,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					log.Warn("fetch JWKS failed; keeping the last good key set", "url", redactURL(u), "error", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.jwks_url: %w", err)
		}
		v.jwks = kf
	}
	if v.jwks != nil {
		methods = append(methods, asymmetricAlgs...)
	}
	if len(methods) == 0 {
		return nil, errors.New("auth.jwt: set jwks_file, jwks_url or hs256_secret")
	}
	leeway := cfg.Leeway.D()
	if cfg.Leeway == 0 {
		leeway = config.DefaultJWTLeeway.D()
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(o.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// jwtCaller is what a valid token says about its sender.
type jwtCaller struct {
	issuer, subject string
	scopes          map[string]bool
}

// verify checks token. The error is a short reason fit for
// error_description; it never echoes the token.
func (v *jwtVerifier) verify(ctx context.Context, token string) (*jwtCaller, error) {
	if len(token) > maxToken {
		return nil, errors.New("the token is too long")
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == "HS256" {
			return v.hs256, nil // only listed when hs256_secret is set
		}
		kf := v.jwks
		if v.file != nil {
			kf = v.file.current()
		}
		return kf.KeyfuncCtx(ctx)(t)
	})
	if err != nil {
		return nil, jwtReason(err)
	}
	c := &jwtCaller{scopes: map[string]bool{}}
	c.issuer, _ = claims.GetIssuer()
	c.subject, _ = claims.GetSubject()
	switch s := claims[v.scopesClaim].(type) {
	case string:
		for _, f := range strings.Fields(s) {
			c.scopes[f] = true
		}
	case []any:
		for _, e := range s {
			if str, ok := e.(string); ok && str != "" {
				c.scopes[str] = true
			}
		}
	}
	return c, nil
}

// jwtReason turns a parse failure into the reason a caller is told.
func jwtReason(err error) error {
	msg := "the token is invalid"
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "the token is malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		msg = "no configured key can verify the token (unknown kid, or an unsupported alg)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		msg = "the token's signing algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		msg = "the token's signature is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msg = "the token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		msg = "the token was issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		msg = "the token lacks a required claim (exp)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		msg = "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		msg = "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		msg = "the token's claims are invalid"
	}
	return errors.New(msg)
}

// looksLikeJWT reports whether s has the three dot-separated parts of a
// compact JWS.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }
