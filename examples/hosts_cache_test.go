package examples_test

import (
	"io"
	"net/http"
	"testing"
)

func (g *gateway) get(t *testing.T, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := g.client.Get(g.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestHostsCacheExample(t *testing.T) {
	g := startExample(t, "hosts-cache")
	a, b, levels := g.services["PRODUCTS_A_URL"], g.services["PRODUCTS_B_URL"], g.services["LEVELS_URL"]

	t.Run("the second read is a cache hit", func(t *testing.T) {
		code, h, body := g.get(t, "/products?sku=tent")
		if code != http.StatusOK || h.Get("Tandem-Cache") != "miss" {
			t.Fatalf("first: %d %v %s", code, h, body)
		}
		var ans struct {
			Status string
			Steps  map[string]struct {
				Status string
				Body   struct {
					Name      string
					Available int
				}
			}
		}
		decode(t, body, &ans)
		if ans.Status != "succeeded" || ans.Steps["product"].Body.Name != "Tent for two" || ans.Steps["stock"].Body.Available != 7 {
			t.Fatalf("answer %s", body)
		}
		code, h, again := g.get(t, "/products?sku=tent")
		if code != http.StatusOK || h.Get("Tandem-Cache") != "hit" || string(again) != string(body) {
			t.Fatalf("second: %d %v %s", code, h, again)
		}
		if n := len(a.Calls("/products")) + len(b.Calls("/products")); n != 1 {
			t.Errorf("products called %d times for two reads", n)
		}
		if n := len(levels.Calls("/levels")); n != 1 {
			t.Errorf("levels called %d times for two reads", n)
		}
	})

	t.Run("reads spread over both hosts", func(t *testing.T) {
		for _, sku := range []string{"stove", "lamp", "stove2", "lamp2"} {
			g.get(t, "/products?sku="+sku)
		}
		if len(a.Calls("/products")) < 2 || len(b.Calls("/products")) < 2 {
			t.Errorf("hosts got %d and %d calls, want both a share", len(a.Calls("/products")), len(b.Calls("/products")))
		}
	})

	t.Run("a host goes down: reads go to the other", func(t *testing.T) {
		g.servers["PRODUCTS_A_URL"].Close()
		before := len(b.Calls("/products"))
		for _, sku := range []string{"x1", "x2", "x3", "x4", "x5", "x6"} {
			code, _, body := g.get(t, "/products?sku="+sku)
			// An unknown sku is the products API's 404: a step that failed
			// for good, answered 207 (levels succeeded).
			if code != http.StatusMultiStatus {
				t.Fatalf("sku %s with host a down: %d %s", sku, code, body)
			}
		}
		if got := len(b.Calls("/products")) - before; got != 6 {
			t.Errorf("host b got %d of 6 reads while a was down", got)
		}
		_, _, body := g.get(t, "/v1/targets")
		var tl struct {
			Targets []struct {
				Name  string
				Hosts []struct {
					URL, State string
					Failures   int
				}
			}
		}
		decode(t, body, &tl)
		for _, tg := range tl.Targets {
			if tg.Name != "products" {
				continue
			}
			if len(tg.Hosts) != 2 || tg.Hosts[0].State != "ejected" || tg.Hosts[1].State != "healthy" {
				t.Errorf("hosts %+v, want a ejected and b healthy", tg.Hosts)
			}
		}
	})
}
