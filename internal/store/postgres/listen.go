package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen returns the targets that have new work, from every replica on the
// database: a commit that inserts due deliveries or makes them due (a
// message, a resolved dependency, a replay, a delivery given back) sends
// one NOTIFY per target. It uses its own connection (LISTEN needs a
// session), which reconnects with backoff when lost.
//
// An empty string means "notifications may have been missed": it comes
// each time the listener has (re)connected, including the first time, so
// the receiver should then look at every target. Notifications are
// hints: repeats of a target not yet received are merged, and polling
// stays the fallback. The channel is closed when ctx ends or the store
// closes.
func (s *Store) Listen(ctx context.Context) <-chan string {
	out := make(chan string, 64)
	in, _ := s.subscribe(ctx, s.channel)
	if in == nil {
		close(out)
		return out
	}
	go forward(in, out)
	return out
}

// subscribe starts a LISTEN session on channel, on its own connection,
// for as long as ctx and the store live. It returns the payloads ("" after
// each (re)connect), closed when the session ends, and a context that ends
// with it; nil when the store is closed.
func (s *Store) subscribe(ctx context.Context, channel string) (<-chan string, context.Context) {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.checkOpen() != nil {
		return nil, nil
	}
	in := make(chan string, 256)
	ctx, cancel := context.WithCancel(ctx)
	s.listeners.Add(2)
	go func() {
		defer s.listeners.Done()
		select {
		case <-ctx.Done():
		case <-s.closed:
		}
		cancel()
	}()
	go func() {
		defer s.listeners.Done()
		defer close(in)
		s.listen(ctx, channel, in)
	}()
	return in, ctx
}

// listen keeps a LISTEN session on channel open until ctx ends, passing
// payloads to in, and "" after each (re)connect.
func (s *Store) listen(ctx context.Context, channel string, in chan<- string) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		conn, err := s.listenConn(ctx, channel)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			s.log.Warn("postgres listen: connect", "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		select {
		case in <- "":
		case <-ctx.Done():
		}
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("postgres listen: connection lost", "error", err)
				}
				break
			}
			select {
			case in <- n.Payload:
			case <-ctx.Done():
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}
}

func (s *Store) listenConn(ctx context.Context, channel string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// forward passes targets from in to out, merging repeats of a target that
// out's reader has not taken yet, so a slow reader never blocks the
// listener. It closes out once in is closed.
func forward(in <-chan string, out chan<- string) {
	defer close(out)
	var pending []string
	queued := map[string]bool{}
	for {
		var send chan<- string
		var next string
		if len(pending) > 0 {
			send, next = out, pending[0]
		}
		select {
		case t, ok := <-in:
			if !ok {
				return
			}
			if !queued[t] {
				queued[t] = true
				pending = append(pending, t)
			}
		case send <- next:
			pending = pending[1:]
			delete(queued, next)
		}
	}
}
