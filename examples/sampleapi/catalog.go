package sampleapi

import (
	"net/http"
	"strings"
)

// catalog is the sample product catalog: sku → name and price.
var catalog = map[string]struct {
	Name  string
	Price float64
}{
	"tent":  {"Tent for two", 189},
	"stove": {"Camping stove", 49.5},
	"lamp":  {"Head lamp", 19.9},
}

// SetHeader makes the service send header k: v with every answer (a
// Cache-Control, say).
func (s *Service) SetHeader(k, v string) {
	s.mu.Lock()
	if s.header == nil {
		s.header = http.Header{}
	}
	s.header.Set(k, v)
	s.mu.Unlock()
}

// Products answers GET /products?sku=S with {"sku", "name", "price", "host"}
// (200; "host" is the service's name, so a caller sees which host
// answered), or 404 for an unknown sku. Its answers may be cached for 60s
// (Cache-Control: max-age=60). Two of them play two hosts of one API.
func Products(name string) *Service {
	s := New(name)
	s.SetHeader("Cache-Control", "max-age=60")
	s.Handle(http.MethodGet, "/products", func(c *Call) (int, any) {
		sku := queryValue(c.Query, "sku")
		p, ok := catalog[strings.ToLower(sku)]
		if !ok {
			return http.StatusNotFound, map[string]string{"error": "unknown sku", "sku": sku}
		}
		return http.StatusOK, map[string]any{"sku": sku, "name": p.Name, "price": p.Price, "host": name}
	})
	return s
}

// Levels answers GET /levels?sku=S with {"sku", "available"} (200); its
// answers may be cached for 10s.
func Levels() *Service {
	s := New("levels")
	s.SetHeader("Cache-Control", "max-age=10")
	s.Handle(http.MethodGet, "/levels", func(c *Call) (int, any) {
		sku := queryValue(c.Query, "sku")
		return http.StatusOK, map[string]any{"sku": sku, "available": 3 + len(sku)}
	})
	return s
}
