package engine

import (
	"fmt"
	"net/url"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/target"
)

// trustEndpoint adds a target's signing, OAuth2 and TLS settings to ep. The
// OAuth2 token cache and the TLS client belong to the endpoint, so every
// route that calls the target shares them (one token, one pool).
func trustEndpoint(ep *target.Endpoint, tc *config.Target) error {
	if s := tc.Sign; s != nil {
		if sw := s.StandardWebhooks; sw != nil {
			sg, err := target.NewStandardWebhooks(sw.All())
			if err != nil {
				return fmt.Errorf("sign.standard_webhooks: %w", err)
			}
			ep.Sign = append(ep.Sign, sg)
		}
		if h := s.HMAC; h != nil {
			sg, err := target.NewHMAC(target.HMACOptions{
				Secret: h.Secret, Header: h.Header, Algorithm: h.Algorithm,
				Encoding: h.Encoding, Prefix: h.Prefix, Format: h.Format,
			})
			if err != nil {
				return fmt.Errorf("sign.hmac: %w", err)
			}
			ep.Sign = append(ep.Sign, sg)
		}
	}
	if o := tc.Auth.OAuth2; o != nil {
		params := url.Values{}
		for k, v := range o.EndpointParams {
			params.Set(k, v)
		}
		if o.Audience != "" {
			params.Set("audience", o.Audience)
		}
		ep.OAuth2 = target.NewOAuth2(target.OAuth2Options{
			TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			Scopes: o.Scopes, Params: params,
		})
	}
	if t := tc.TLS; t != nil {
		ep.TLS = target.NewTLSClient(target.TLSOptions{
			CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName,
		})
	}
	return nil
}
