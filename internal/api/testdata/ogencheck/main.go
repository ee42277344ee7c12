// Command ogencheck decodes real answers of a tandem server with a client
// that ogen (a strict OpenAPI code generator) generated from the server's
// own /openapi.json into ./client. TestOgenClientDecodesAnswers
// (openapi_ogen_test.go) generates the client and runs it; any answer the
// generated code cannot decode is printed and makes it exit 1.
//
// Usage: ogencheck BASE_URL OK_MESSAGE_ID FAILED_MESSAGE_ID DEAD_DELIVERY_ID SUCCEEDED_DELIVERY_ID
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"tandem.test/ogencheck/client"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: ogencheck BASE_URL OK_ID FAIL_ID DEAD_ID DONE_ID")
		os.Exit(2)
	}
	base, okID, failID, deadID, doneID := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	c, err := client.NewClient(base)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	failed := false
	// check reports a call whose answer did not decode, or decoded as
	// another type than want (the name of the generated type).
	check := func(what string, res any, err error, want string) {
		got := fmt.Sprintf("%T", res)
		switch {
		case err != nil:
			fmt.Printf("FAIL %s: %v\n", what, err)
			failed = true
		case !strings.HasSuffix(got, "."+want):
			fmt.Printf("FAIL %s: decoded as %s, want %s\n", what, got, want)
			failed = true
		default:
			fmt.Printf("ok   %s: %s\n", what, got)
		}
	}
	r1, err := c.ListMessages(ctx, client.ListMessagesParams{})
	check("list messages", r1, err, "MessageList")
	r2, err := c.GetMessage(ctx, client.GetMessageParams{ID: okID})
	check("get a message that succeeded", r2, err, "MessageDetail")
	r3, err := c.GetMessage(ctx, client.GetMessageParams{ID: failID})
	check("get a message with a dead and a skipped delivery", r3, err, "MessageDetail")
	r4, err := c.GetMessage(ctx, client.GetMessageParams{ID: "nope"})
	check("get an unknown message", r4, err, "GetMessageNotFound")
	r5, err := c.ListDeadLetters(ctx, client.ListDeadLettersParams{})
	check("list dead letters", r5, err, "DeadLetterList")
	r6, err := c.ListRoutes(ctx)
	check("list routes", r6, err, "RouteList")
	r7, err := c.ListTargets(ctx)
	check("list targets", r7, err, "TargetList")
	r8, err := c.ListSources(ctx)
	check("list sources", r8, err, "SourceList")
	r9, err := c.Healthz(ctx)
	check("healthz", r9, err, "HealthzOK")
	r10, err := c.Readyz(ctx)
	check("readyz", r10, err, "ReadyzOK")
	r11, err := c.ReplayDeadLetters(ctx, &client.ReplayRequest{Ids: []string{"nope"}})
	check("replay unknown ids", r11, err, "ReplayResult")
	r12, err := c.ReplayDeadLetters(ctx, &client.ReplayRequest{})
	check("replay selecting nothing", r12, err, "ReplayDeadLettersUnprocessableEntity")
	r13, err := c.ReplayDelivery(ctx, &client.ReplayDeliveryReq{}, client.ReplayDeliveryParams{ID: deadID})
	check("replay a dead delivery", r13, err, "ReplayResult")
	r14, err := c.ReplayDelivery(ctx, &client.ReplayDeliveryReq{}, client.ReplayDeliveryParams{ID: doneID})
	check("replay a delivery that is not dead", r14, err, "ReplayDeliveryConflict")
	r15, err := c.PurgeDeadLetters(ctx, &client.PurgeRequest{Ids: []string{"nope"}})
	check("purge unknown ids", r15, err, "PurgeResult")
	syncBody := client.RouteSyncReqApplicationJSON(`{"n":1}`)
	r16, err := c.RouteSync(ctx, &syncBody, client.RouteSyncParams{})
	check("a waiting route", r16, err, "RouteSyncOK")
	ordersBody := client.RouteOrdersReqApplicationJSON(`{"n":1}`)
	r17, err := c.RouteOrders(ctx, &ordersBody, client.RouteOrdersParams{})
	check("an accepting route", r17, err, "MessageAnswerHeaders")
	if failed {
		os.Exit(1)
	}
}
