// Command function serves tandem's gateway as one http.Handler, the shape
// Cloud Run, Knative and Lambda's HTTP adapters call: it accepts into
// PostgreSQL and runs no worker; `tandem worker --once`, run on a
// schedule, delivers. See README.md.
//
//	DATABASE_URL=postgres://... CRM_URL=... EMAIL_URL=... PORT=8080 go run ./examples/function
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, "function:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. With ln nil it listens on $PORT (default
// 8080), as Cloud Run and Knative ask.
func run(ctx context.Context, getenv func(string) string, ln net.Listener) error {
	cfg := getenv("TANDEM_CONFIG")
	if cfg == "" {
		cfg = "examples/function/tandem.yaml"
	}
	h, err := gateway.New(ctx, gateway.Options{ConfigFile: cfg})
	if err != nil {
		return err
	}
	if ln == nil {
		port := getenv("PORT")
		if port == "" {
			port = "8080"
		}
		if ln, err = net.Listen("tcp", ":"+port); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	cerr := h.Close(context.Background())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, cerr)
}
