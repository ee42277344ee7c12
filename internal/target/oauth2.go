package target

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenEarly is how long before its expiry a cached access token is
// fetched anew, so a token never expires on its way to the target.
const tokenEarly = 10 * time.Second

// OAuth2Options configure an OAuth2 client-credentials grant (RFC 6749
// §4.4) for one target.
type OAuth2Options struct {
	// TokenURL is the authorization server's token endpoint. Required.
	TokenURL string
	// ClientID and ClientSecret authenticate tandem at the token endpoint
	// (HTTP basic auth, or form fields if the server refuses that).
	ClientID, ClientSecret string
	// Scopes are asked for in the "scope" parameter. Default none.
	Scopes []string
	// Params are extra form parameters, e.g. "audience" or "resource".
	// Default none.
	Params url.Values
	// HTTPClient calls the token endpoint. Default a client with a 10s
	// timeout.
	HTTPClient *http.Client
	// Now reads the clock for token expiry. Default time.Now.
	Now func() time.Time
}

// OAuth2 fetches and caches an access token for one target. It is safe for
// concurrent use: concurrent attempts that find no valid token wait for one
// fetch rather than each asking the token endpoint.
type OAuth2 struct {
	cfg    clientcredentials.Config
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	tok     *oauth2.Token
	expires time.Time // zero: no expiry given; kept until a target refuses it
	fetches int64
}

// NewOAuth2 builds the token cache; it fetches nothing yet.
func NewOAuth2(o OAuth2Options) *OAuth2 {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OAuth2{
		cfg: clientcredentials.Config{
			ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL,
			Scopes: o.Scopes, EndpointParams: o.Params,
		},
		client: o.HTTPClient,
		now:    o.Now,
	}
}

// Fetches counts the requests made to the token endpoint.
func (o *OAuth2) Fetches() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches
}

// token returns a valid access token and whether it was fetched for this
// call. The fetch runs under ctx (the attempt's, so its total timeout
// bounds it).
func (o *OAuth2) token(ctx context.Context) (*oauth2.Token, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if o.tok != nil && (o.expires.IsZero() || now.Before(o.expires.Add(-tokenEarly))) {
		return o.tok, false, nil
	}
	o.fetches++
	tok, err := o.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, o.client))
	if err != nil {
		return nil, false, tokenError(err)
	}
	if tok.AccessToken == "" {
		return nil, false, errors.New("the token endpoint answered without an access_token")
	}
	o.tok, o.expires = tok, time.Time{}
	switch {
	case tok.ExpiresIn > 0:
		o.expires = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		o.expires = now.Add(time.Until(tok.Expiry))
	}
	return tok, true, nil
}

// drop forgets tok if it is still the cached token, so the next call
// fetches a new one.
func (o *OAuth2) drop(tok *oauth2.Token) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok == tok {
		o.tok = nil
	}
}

// tokenError names what the token endpoint did without echoing its URL
// (which could carry a secret in its query) or tandem's credentials.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode != "" {
			msg := fmt.Sprintf("the token endpoint answered %d %s", status, re.ErrorCode)
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
			return errors.New(msg)
		}
		return fmt.Errorf("the token endpoint answered %d", status)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}
