package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// MessageGet returns a message with its deliveries (by creation, then step)
// and their attempts, read in one round trip.
func (s *Store) MessageGet(ctx context.Context, id string) (*record.MessageDetail, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`SELECT `+messageCols+` FROM messages WHERE id = $1`, id)
	b.Queue(`SELECT `+deliveryCols+` FROM deliveries WHERE message_id = $1 ORDER BY created_at, step`, id)
	b.Queue(`SELECT a.delivery_id, a.n, a.started_at, a.duration_ns, a.http_status, a.outcome, a.error
		FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.message_id = $1 ORDER BY a.delivery_id, a.n`, id)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()

	m, err := scanMessage(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("get message", err)
	}
	md := &record.MessageDetail{Message: m, Attempts: map[string][]record.Attempt{}}
	rows, err := br.Query()
	if err != nil {
		return nil, wrap("get message deliveries", err)
	}
	if md.Deliveries, err = collectDeliveries(rows); err != nil {
		return nil, wrap("get message deliveries", err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, wrap("get message attempts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a       record.Attempt
			ns      int64
			outcome string
		)
		if err := rows.Scan(&a.DeliveryID, &a.N, &a.StartedAt, &ns, &a.HTTPStatus, &outcome, &a.Error); err != nil {
			return nil, wrap("get message attempts", err)
		}
		a.StartedAt = a.StartedAt.UTC()
		a.Duration = time.Duration(ns)
		a.Outcome = record.Outcome(outcome)
		md.Attempts[a.DeliveryID] = append(md.Attempts[a.DeliveryID], a)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("get message attempts", err)
	}
	return md, nil
}

// MessageList lists messages newest first (by CreatedAt, then ID), without
// their bodies, headers and query.
func (s *Store) MessageList(ctx context.Context, p *store.MessageListParams) (*store.MessageListResult, error) {
	if p == nil {
		p = &store.MessageListParams{}
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	cur, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	limit := store.PageLimit(p.Limit)
	var f filter
	f.eq("status", string(p.Status))
	f.eq("route", p.Route)
	if p.IdempotencyKey != "" {
		f.where = append(f.where, "idempotency_key = "+f.arg([]byte(p.IdempotencyKey))+" AND idempotency_key <> ''")
	}
	if !p.CreatedFrom.IsZero() {
		f.where = append(f.where, "created_at >= "+f.arg(micro(p.CreatedFrom)))
	}
	if !p.CreatedBefore.IsZero() {
		f.where = append(f.where, "created_at < "+f.arg(micro(p.CreatedBefore)))
	}
	q := f.page(`SELECT `+messageListCols+` FROM messages`, cur, limit)
	rows, err := s.pool.Query(ctx, q, f.args...)
	if err != nil {
		return nil, wrap("list messages", err)
	}
	defer rows.Close()
	res := &store.MessageListResult{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, wrap("list messages", err)
		}
		res.Messages = append(res.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list messages", err)
	}
	res.Messages, res.NextCursor = store.Page(res.Messages, limit, store.MessagePos)
	return res, nil
}
