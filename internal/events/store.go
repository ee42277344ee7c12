package events

import (
	"context"
	"sync"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Wrap returns st with every successful write reported to the hub
// (Changed). Give the result to the engine, the sources and the API; the
// optional interfaces of st (store.Listener, store.Heartbeater, ...) are
// not passed through: use st itself for those. Wrap(nil) is nil.
func (h *Hub) Wrap(st store.Store) store.Store {
	if st == nil {
		return nil
	}
	return &watched{Store: st, h: h}
}

// watched is a store.Store whose writes tell the hub what changed.
type watched struct {
	store.Store
	h *Hub
}

func (w *watched) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	res, err := w.Store.MessageInsert(ctx, p)
	if err == nil && res != nil && !res.Existing {
		// The whole new state is known here: no need to read it back.
		md := &record.MessageDetail{Message: res.Message, Deliveries: make([]record.Delivery, len(p.Deliveries))}
		for i, d := range p.Deliveries {
			d.MessageID, d.Route = res.Message.ID, res.Message.Route
			if d.CreatedAt.IsZero() {
				d.CreatedAt, d.UpdatedAt = res.Message.CreatedAt, res.Message.CreatedAt
			}
			md.Deliveries[i] = d
		}
		w.h.inserted(md)
	}
	return res, err
}

func (w *watched) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	ds, err := w.Store.DeliveryClaim(ctx, p)
	if err == nil && len(ds) > 0 {
		w.h.Changed(w.h.claims.add(ds)...)
	}
	return ds, err
}

func (w *watched) DeliveryComplete(ctx context.Context, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	res, err := w.Store.DeliveryComplete(ctx, p)
	w.h.claims.take(p.DeliveryID)
	if err == nil && res != nil {
		w.h.Changed(res.MessageID)
	}
	return res, err
}

func (w *watched) DeliveryPostpone(ctx context.Context, p *store.DeliveryPostponeParams) error {
	err := w.Store.DeliveryPostpone(ctx, p)
	if id := w.h.claims.take(p.DeliveryID); err == nil && id != "" {
		w.h.Changed(id)
	}
	return err
}

func (w *watched) DeliveryReplay(ctx context.Context, p *store.DeliveryReplayParams) (*store.DeliveryReplayResult, error) {
	res, err := w.Store.DeliveryReplay(ctx, p)
	if err == nil && res != nil {
		w.h.Changed(messageIDs(res.Replayed)...)
	}
	return res, err
}

func (w *watched) DeliveryPurge(ctx context.Context, p *store.DeliveryPurgeParams) ([]record.Delivery, error) {
	ds, err := w.Store.DeliveryPurge(ctx, p)
	if err == nil {
		w.h.Changed(messageIDs(ds)...)
	}
	return ds, err
}

// DeliveryDiscard is not followed: it names no messages, and runs at
// start-up, before anyone can listen.

func messageIDs(ds []record.Delivery) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		if !seen[d.MessageID] {
			seen[d.MessageID] = true
			out = append(out, d.MessageID)
		}
	}
	return out
}

// claims remembers the message of each claimed delivery, so a postpone
// (which names only the delivery) can say which message changed.
type claims struct {
	mu sync.Mutex
	m  map[string]string // delivery id → message id
}

// maxClaims bounds claims: leases that are never given back (a crashed
// attempt) would otherwise pile up. Past it the map starts afresh, and
// postpones of the forgotten claims go unseen until their next change.
const maxClaims = 100000

func (c *claims) add(ds []record.Delivery) []string {
	c.mu.Lock()
	if len(c.m)+len(ds) > maxClaims {
		clear(c.m)
	}
	for _, d := range ds {
		c.m[d.ID] = d.MessageID
	}
	c.mu.Unlock()
	return messageIDs(ds)
}

func (c *claims) take(deliveryID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.m[deliveryID]
	delete(c.m, deliveryID)
	return id
}
