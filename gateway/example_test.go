package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-run/tandem/gateway"
)

// The gateway as a plain handler, here wrapped in an httptest server as a
// platform's HTTP front would wrap it. This config's one route runs in the
// request (durable: false), so it needs no database; durable routes
// accept into the PostgreSQL of store.dsn.
func ExampleNew() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"price":12.5}`)
	}))
	defer api.Close()
	dir, _ := os.MkdirTemp("", "gateway-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tandem.yaml")
	_ = os.WriteFile(path, []byte(`
targets:
  prices: { url: "`+api.URL+`" }
routes:
  - { name: quote, path: /quote, durable: false, respond: all, steps: [{ name: price, target: prices }] }
`), 0o600)

	h, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close(context.Background())
	front := httptest.NewServer(h)
	defer front.Close()

	resp, err := http.Post(front.URL+"/quote", "application/json", strings.NewReader(`{}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"price":{"status":"succeeded"`))
	// Output:
	// 200 true
}
