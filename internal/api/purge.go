package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tandem-run/tandem/internal/store"
)

// purgeRequest selects dead letters to purge, like a replay: by ids, by a
// route/target filter, or all of them.
type purgeRequest struct {
	IDs    []string `json:"ids,omitempty" maxItems:"1000" doc:"Delivery ids to purge. Not combined with the other fields."`
	Route  string   `json:"route,omitempty" maxLength:"256" doc:"Purge dead letters of this route."`
	Target string   `json:"target,omitempty" maxLength:"256" doc:"Purge dead letters of this target."`
	Limit  int      `json:"limit,omitempty" minimum:"1" maximum:"1000" doc:"At most this many, oldest first, with a filter or all. Default 1000."`
	All    bool     `json:"all,omitempty" doc:"Purge every dead letter (up to limit); needed when no ids, route or target is given."`
}

type purgeDeadLettersInput struct {
	Body purgeRequest
}

// purgeResult is the body of POST /v1/dead-letters/purge.
type purgeResult struct {
	Purged int      `json:"purged"`
	IDs    []string `json:"ids" doc:"Ids of the deliveries taken out of the dead letters (now cancelled)."`
}

// registerPurge registers POST /v1/dead-letters/purge.
func (s *server) registerPurge(api huma.API) {
	huma.Register(api, secured(huma.Operation{
		OperationID: "purge-dead-letters", Method: http.MethodPost, Path: "/v1/dead-letters/purge",
		Summary: "Purge dead letters",
		Description: "Takes dead deliveries out of the dead letters for good, by ids or by filter: each becomes cancelled " +
			"(its last_error starts with \"purged: \") and can no longer be replayed; its message keeps its history " +
			"until store.retention removes it. Deliveries that are not dead are left alone and not counted.",
		Tags: []string{"dead letters"}, Errors: []int{400, 401, 403, 422, 503},
	}), s.purgeDeadLetters)
}

func (s *server) purgeDeadLetters(ctx context.Context, in *purgeDeadLettersInput) (*body[*purgeResult], error) {
	req := in.Body
	p := &store.DeliveryPurgeParams{}
	switch {
	case len(req.IDs) > 0:
		if req.Route != "" || req.Target != "" || req.All || req.Limit != 0 {
			return nil, invalid("ids cannot be combined with route, target, limit or all", "body.ids")
		}
		p.IDs = slices.Compact(slices.Sorted(slices.Values(req.IDs)))
	case req.Route != "" || req.Target != "" || req.All:
		p.Route, p.Target, p.Limit = req.Route, req.Target, req.Limit
	default:
		return nil, invalid(`give ids, a route or target filter, or "all": true`, "body")
	}
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	out := &purgeResult{IDs: []string{}}
	if st == nil {
		return &body[*purgeResult]{Body: out}, nil
	}
	ds, err := st.DeliveryPurge(ctx, p)
	if err != nil {
		return nil, s.errorProblem(ctx, "purge dead letters", false, err)
	}
	for _, d := range ds {
		out.IDs = append(out.IDs, d.ID)
	}
	out.Purged = len(out.IDs)
	return &body[*purgeResult]{Body: out}, nil
}
