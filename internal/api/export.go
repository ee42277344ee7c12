package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
)

// Admin gives the dashboard (internal/ui) the admin API's reads, views
// and actions in process, so a page shows exactly what the API answers.
// Auth is the caller's to check.
type Admin struct {
	s *server
}

// NewAdmin returns the admin operations of eng under cfg.
func NewAdmin(eng *engine.Engine, cfg *config.Config, log *slog.Logger) (*Admin, error) {
	return NewAdminContext(context.Background(), eng, cfg, log)
}

// NewAdminContext is NewAdmin whose background work (the JWKS refresh of
// auth.jwt.jwks_url) ends with ctx.
func NewAdminContext(ctx context.Context, eng *engine.Engine, cfg *config.Config, log *slog.Logger) (*Admin, error) {
	if cfg == nil && eng != nil {
		cfg = eng.Config()
	}
	if cfg == nil {
		return nil, errors.New("api: config is required")
	}
	if log == nil {
		log = slog.Default()
	}
	auth, err := newAuthenticator(cfg, jwtOptions{Ctx: ctx, Logger: log})
	if err != nil {
		return nil, err
	}
	return &Admin{s: &server{eng: eng, cfg: cfg, log: log, auth: auth, targets: cfg.Redacted().Targets}}, nil
}

// KeysConfigured reports whether auth.keys is set (the dashboard then
// asks for a login).
func (a *Admin) KeysConfigured() bool { return a.s.auth.enabled() }

// CheckAdminKey reports whether secret is a configured key with the
// admin scope, and its name. It compares like the bearer check does.
func (a *Admin) CheckAdminKey(secret string) (string, bool) {
	r := &http.Request{Header: http.Header{"Authorization": {"Bearer " + secret}}}
	k, p := a.s.auth.identify(r)
	if p != nil || !k.Scopes[scopeAdmin] {
		return "", false
	}
	return k.Name, true
}

// MessageView is GET /v1/messages/{id}'s answer for md.
func MessageView(md *record.MessageDetail) *tapi.MessageDetail { return detailOf(md) }

// SummaryView is a row of GET /v1/messages.
func SummaryView(m record.Message) tapi.MessageSummary { return summaryOf(m) }

// DeadLetterView is a row of GET /v1/dead-letters.
func DeadLetterView(d record.Delivery) tapi.DeadLetter { return deadLetterOf(d) }

// Targets is GET /v1/targets.
func (a *Admin) Targets(ctx context.Context) ([]tapi.Target, error) {
	out, err := a.s.listTargets(ctx, nil)
	if err != nil {
		return nil, err
	}
	return out.Body.Targets, nil
}

// Routes is GET /v1/routes.
func (a *Admin) Routes(ctx context.Context) ([]tapi.RouteInfo, error) {
	out, err := a.s.listRoutes(ctx, nil)
	if err != nil {
		return nil, err
	}
	return out.Body.Routes, nil
}

// ReplayDeadLetters is POST /v1/dead-letters/replay with these ids.
func (a *Admin) ReplayDeadLetters(ctx context.Context, ids []string) (*tapi.ReplayResult, error) {
	out, err := a.s.replayDeadLetters(ctx, &replayDeadLettersInput{Body: tapi.ReplayRequest{IDs: ids}})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// PurgeDeadLetters is POST /v1/dead-letters/purge with these ids; it
// returns the ids purged.
func (a *Admin) PurgeDeadLetters(ctx context.Context, ids []string) ([]string, error) {
	out, err := a.s.purgeDeadLetters(ctx, &purgeDeadLettersInput{Body: purgeRequest{IDs: ids}})
	if err != nil {
		return nil, err
	}
	return out.Body.IDs, nil
}

// ErrorDetail is the detail a problem error from Admin's calls carries,
// or a generic text for others.
func ErrorDetail(err error) string {
	var p *Problem
	if errors.As(err, &p) && p.Detail != "" {
		return p.Detail
	}
	return "internal error"
}
