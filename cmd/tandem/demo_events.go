package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-run/tandem/internal/engine"
)

// defaultNATS is where `tandem demo --example events` looks for NATS
// unless NATS_URL says otherwise.
const defaultNATS = "nats://127.0.0.1:4222"

// eventsDemo is the NATS side of `tandem demo --example events`: a
// connection that publishes order.created and listens on orders.done.
type eventsDemo struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	done *nats.Subscription
}

// errNoNATS: the events example found no NATS with JetStream.
var errNoNATS = errors.New("no NATS with JetStream")

// prepareEvents connects to NATS at url (default defaultNATS), checks
// JetStream is on, sets NATS_URL for the example's config, and listens on
// orders.done. Without NATS it says what to start.
func prepareEvents(ctx context.Context, url string) (*eventsDemo, error) {
	if url == "" {
		url = defaultNATS
	}
	hint := fmt.Sprintf("the events example needs NATS with JetStream at %s. Start one:\n"+
		"    nats-server -js                                (https://docs.nats.io/running-a-nats-service/introduction/installation)\n"+
		"    docker run --rm -p 4222:4222 nats:latest -js   (the same, in a container)\n"+
		"  or point the demo at yours: NATS_URL=nats://HOST:4222 tandem demo --example events", url)
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.Name("tandem demo"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w: %s (%v)", errNoNATS, hint, err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = js.AccountInfo(actx)
		cancel()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("demo: %w: NATS answers at %s but JetStream is off (%v); %s", errNoNATS, url, err, hint)
	}
	sub, err := nc.SubscribeSync("orders.done")
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("demo: subscribe to orders.done: %w", err)
	}
	if err := os.Setenv("NATS_URL", url); err != nil {
		nc.Close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	return &eventsDemo{nc: nc, js: js, done: sub}, nil
}

func (ev *eventsDemo) close() { ev.nc.Close() }

// eventsRequests are the order.created events the demo publishes.
var eventsRequests = []exampleRequest{
	{"an order", "order.created", `{"order": "o-1", "total": 42, "address": "1 Main St"}`},
	{"another order", "order.created", `{"order": "o-2", "total": 17.5}`},
	{"no total: billing refuses it (422)", "order.created", `{"order": "o-3", "address": "2 Side St"}`},
}

// run publishes the events, waits for each outcome on orders.done, and
// shows every message's deliveries and the outcomes.
func (ev *eventsDemo) run(ctx context.Context, out io.Writer, c *exampleClient) error {
	fmt.Fprintln(out, "NATS: publishing to order.created (stream ORDERS; tandem consumes it and acknowledges after its commit)")
	run := time.Now().UnixNano()
	for i, r := range eventsRequests {
		m := nats.NewMsg(r.path)
		m.Data = []byte(r.body)
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("demo-%d-%d", run, i))
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := ev.js.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			return fmt.Errorf("demo: publish %s: %w", r.path, err)
		}
		fmt.Fprintf(out, "   %-40s → stream %s seq %d  %s\n", r.title, ack.Stream, ack.Sequence, r.body)
	}
	fmt.Fprintln(out, "\nWaiting for the outcomes on orders.done...")
	var sums []engine.Summary
	deadline := time.Now().Add(30 * time.Second)
	for len(sums) < len(eventsRequests) {
		m, err := ev.done.NextMsg(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("demo: %d of %d outcomes arrived on orders.done: %w", len(sums), len(eventsRequests), err)
		}
		var s engine.Summary
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return fmt.Errorf("demo: an outcome that is not a summary: %w", err)
		}
		if !slices.ContainsFunc(sums, func(x engine.Summary) bool { return x.MessageID == s.MessageID }) {
			sums = append(sums, s)
		}
	}
	slices.SortFunc(sums, func(a, b engine.Summary) int { return a.CreatedAt.Compare(b.CreatedAt) })
	ids := make([]string, len(sums))
	for i, s := range sums {
		ids[i] = s.MessageID
	}
	if err := waitOutcomesRecorded(ctx, c, ids); err != nil {
		return err
	}
	if err := settleAndShow(ctx, out, c, ids); err != nil {
		return err
	}
	fmt.Fprintln(out, "Outcomes published to orders.done:")
	for _, s := range sums {
		var steps []string
		for _, name := range []string{"bill", "ship"} {
			a := s.Steps[name]
			steps = append(steps, fmt.Sprintf("%s %s %d %s", name, a.Status, a.HTTPStatus, compactJSON(a.Body)))
		}
		fmt.Fprintf(out, "   message %s: %s  (%s)\n", s.MessageID, s.Status, strings.Join(steps, "; "))
	}
	fmt.Fprintln(out)
	return nil
}

// printEventsHints says, with --serve, how to publish and watch.
func printEventsHints(out io.Writer, addr string) {
	for _, r := range eventsRequests {
		fmt.Fprintf(out, "  # %s\n  nats pub %s '%s'\n", r.title, r.path, r.body)
	}
	fmt.Fprintf(out, "  nats sub orders.done                # the outcomes\n  tandem messages list --server http://%s\n", addr)
}

// waitOutcomesRecorded waits until each message's on_complete delivery is
// recorded final: the broker's ack can come before the store write.
func waitOutcomesRecorded(ctx context.Context, c *exampleClient, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, id := range ids {
		for {
			var m struct {
				Deliveries []struct{ Step, Status string }
			}
			if err := c.get("/v1/messages/"+id, &m); err != nil {
				return err
			}
			open := false
			for _, d := range m.Deliveries {
				if strings.HasPrefix(d.Step, "on_complete.") && d.Status != "succeeded" && d.Status != "dead" {
					open = true
				}
			}
			if !open {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("demo: the outcome of %s is not recorded: %w", id, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}
