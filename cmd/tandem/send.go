package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/tandem-run/tandem/client"
)

func (m *Main) send(ctx context.Context, args []string) error {
	fs := m.newFlags("send", "send --path /orders [--method M] [--data JSON | --file FILE] [--header 'K: V' ...] [--idempotency-key K]")
	server, key := m.serverFlags(fs)
	path := fs.String("path", "", "the route's path, e.g. /orders")
	method := fs.String("method", http.MethodPost, "the HTTP method")
	data := fs.String("data", "", "the body to send")
	file := fs.String("file", "", "read the body from this file (- for stdin)")
	ctype := fs.String("content-type", "application/json", "the body's content type")
	idem := fs.String("idempotency-key", "", "an Idempotency-Key for the message")
	var headers multiFlag
	fs.Var(&headers, "header", "a request header, 'Name: value' (repeat for more)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" || !strings.HasPrefix(*path, "/") {
		return usagef("send: give --path, starting with /")
	}
	if *data != "" && *file != "" {
		return usagef("send: give --data or --file, not both")
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(strings.TrimSpace(k), " \t") {
			return usagef("send: --header %q: want 'Name: value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var body []byte
	switch {
	case *file == "-":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("send: read stdin: %w", err)
		}
		body = b
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		body = b
	case *data != "":
		body = []byte(*data)
	}
	if body != nil && h.Get("Content-Type") == "" {
		h.Set("Content-Type", *ctype)
	}
	if *idem != "" {
		h.Set("Idempotency-Key", *idem)
	}
	res, err := client.New(*server, *key).SendRequest(ctx, &client.Request{Method: strings.ToUpper(*method), Path: *path, Body: body, Header: h})
	if err != nil {
		return remoteError("send", *server, err)
	}
	fmt.Fprintf(m.Stdout, "%d", res.StatusCode)
	if res.Location != "" {
		fmt.Fprintf(m.Stdout, " %s", res.Location)
	}
	if res.Header.Get("Idempotent-Replayed") == "true" {
		fmt.Fprint(m.Stdout, " (an idempotent repeat: the first request's answer; nothing new was created)")
	}
	fmt.Fprintf(m.Stdout, "\n%s\n", strings.TrimSpace(string(res.Body)))
	if res.StatusCode >= 400 {
		return fmt.Errorf("send: the server answered %d", res.StatusCode)
	}
	return nil
}
