package sampleapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Payments answers POST /charges with {"id": "ch_N", "amount", "currency",
// "order"} (201), and POST /refunds with {"id": "rf_N", "charge"} (201).
// A charge without an amount is refused with 422.
func Payments() *Service {
	s := New("payments")
	s.Handle(http.MethodPost, "/charges", func(c *Call) (int, any) {
		var in struct {
			Amount   any    `json:"amount"`
			Currency string `json:"currency"`
			Order    string `json:"order"`
		}
		if err := c.JSON(&in); err != nil || in.Amount == nil {
			return http.StatusUnprocessableEntity, map[string]string{"error": "amount is required"}
		}
		id := fmt.Sprintf("ch_%d", s.Next("ch"))
		return http.StatusCreated, map[string]any{"id": id, "amount": in.Amount, "currency": in.Currency, "order": in.Order}
	})
	s.Handle(http.MethodPost, "/refunds", func(c *Call) (int, any) {
		var in struct {
			Charge string `json:"charge"`
		}
		if err := c.JSON(&in); err != nil || !strings.HasPrefix(in.Charge, "ch_") {
			return http.StatusUnprocessableEntity, map[string]string{"error": "charge is required"}
		}
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("rf_%d", s.Next("rf")), "charge": in.Charge}
	})
	return s
}

// Stock is an inventory's count per sku, safe for concurrent use.
type Stock struct {
	mu sync.Mutex
	n  map[string]int
}

// NewStock returns a stock holding counts.
func NewStock(counts map[string]int) *Stock {
	m := map[string]int{}
	for k, v := range counts {
		m[k] = v
	}
	return &Stock{n: m}
}

// Set sets a sku's count.
func (s *Stock) Set(sku string, n int) {
	s.mu.Lock()
	s.n[sku] = n
	s.mu.Unlock()
}

// take reserves every item, or none: it returns the first sku short.
func (s *Stock) take(items []item) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if s.n[it.SKU] < it.Qty {
			return it.SKU
		}
	}
	for _, it := range items {
		s.n[it.SKU] -= it.Qty
	}
	return ""
}

type item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// Inventory answers POST /reservations {"items": [{"sku", "qty"}]} with
// {"id": "rs_N"} (201), or 409 {"error": "out of stock", "sku"} when an
// item is short.
func Inventory(stock *Stock) *Service {
	s := New("inventory")
	s.Handle(http.MethodPost, "/reservations", func(c *Call) (int, any) {
		var in struct {
			Items []item `json:"items"`
		}
		if err := c.JSON(&in); err != nil || len(in.Items) == 0 {
			return http.StatusUnprocessableEntity, map[string]string{"error": "items are required"}
		}
		for i := range in.Items {
			in.Items[i].Qty = max(in.Items[i].Qty, 1)
		}
		if sku := stock.take(in.Items); sku != "" {
			return http.StatusConflict, map[string]string{"error": "out of stock", "sku": sku}
		}
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("rs_%d", s.Next("rs"))}
	})
	return s
}

// Users answers POST /users {"email", "name"} with {"id": "u_N", "email",
// "name"} (201), or 409 when the email is taken.
func Users() *Service {
	s := New("users")
	var mu sync.Mutex
	taken := map[string]bool{}
	s.Handle(http.MethodPost, "/users", func(c *Call) (int, any) {
		var in struct{ Email, Name string }
		if err := c.JSON(&in); err != nil || in.Email == "" {
			return http.StatusUnprocessableEntity, map[string]string{"error": "email is required"}
		}
		mu.Lock()
		dup := taken[in.Email]
		taken[in.Email] = true
		mu.Unlock()
		if dup {
			return http.StatusConflict, map[string]string{"error": "email already registered"}
		}
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("u_%d", s.Next("u")), "email": in.Email, "name": in.Name}
	})
	return s
}

// Email answers POST /messages with {"id": "em_N", "queued": true} (202).
func Email() *Service {
	s := New("email")
	s.Handle(http.MethodPost, "/messages", func(*Call) (int, any) {
		return http.StatusAccepted, map[string]any{"id": fmt.Sprintf("em_%d", s.Next("em")), "queued": true}
	})
	return s
}

// CRM answers POST /contacts with {"id": "ct_N"} (201).
func CRM() *Service {
	s := New("crm")
	s.Handle(http.MethodPost, "/contacts", func(*Call) (int, any) {
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("ct_%d", s.Next("ct"))}
	})
	return s
}

// Articles answers POST /articles {"title", ...} with {"id": "art_N",
// "slug"} (201).
func Articles() *Service {
	s := New("articles")
	s.Handle(http.MethodPost, "/articles", func(c *Call) (int, any) {
		var in struct{ Title string }
		if err := c.JSON(&in); err != nil || in.Title == "" {
			return http.StatusUnprocessableEntity, map[string]string{"error": "title is required"}
		}
		n := s.Next("art")
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("art_%d", n), "slug": fmt.Sprintf("%d-%s", n, slug(in.Title))}
	})
	return s
}

func slug(t string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// Search answers PUT /index/articles/{id} with {"indexed": id} (200).
func Search() *Service {
	s := New("search")
	s.Handle(http.MethodPut, "/index/articles/", func(c *Call) (int, any) {
		return http.StatusOK, map[string]any{"indexed": strings.TrimPrefix(c.Path, "/index/articles/")}
	})
	return s
}

// Subscribers answers POST /notifications?topic=T with {"topic", "notified":
// 3} (202).
func Subscribers() *Service {
	s := New("subscribers")
	s.Handle(http.MethodPost, "/notifications", func(c *Call) (int, any) {
		return http.StatusAccepted, map[string]any{"topic": queryValue(c.Query, "topic"), "notified": 3}
	})
	return s
}

func queryValue(raw, key string) string {
	for _, kv := range strings.Split(raw, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// Example returns the services an example config calls, keyed by the
// environment variable its config reads their base URL from.
func Example(name string) (map[string]*Service, error) {
	switch name {
	case "order":
		return map[string]*Service{
			"PAYMENTS_URL":  Payments(),
			"INVENTORY_URL": Inventory(NewStock(map[string]int{"tent": 5, "stove": 5, "lamp": 5})),
		}, nil
	case "registration":
		return map[string]*Service{"USERS_URL": Users(), "EMAIL_URL": Email(), "CRM_URL": CRM()}, nil
	case "hosts-cache":
		return map[string]*Service{"PRODUCTS_A_URL": Products("products-a"), "PRODUCTS_B_URL": Products("products-b"), "LEVELS_URL": Levels()}, nil
	case "publishing":
		return map[string]*Service{"ARTICLES_URL": Articles(), "SEARCH_URL": Search(), "SUBSCRIBERS_URL": Subscribers()}, nil
	case "events":
		return map[string]*Service{"BILLING_URL": Billing(), "SHIPPING_URL": Shipping()}, nil
	}
	return nil, fmt.Errorf("unknown example %q: use %s", name, strings.Join(Names(), ", "))
}

// DefaultBasePort is the port of the first sample API that
// `tandem sample-targets` serves; the others follow (see Offsets).
const DefaultBasePort = 9001

// Offsets gives each sample API, by the environment variable the examples
// read its URL from, a fixed port: DefaultBasePort plus its offset. So
// payments is always on 9001 and inventory on 9002, as the README's
// 30-second example and order.yaml expect.
var Offsets = map[string]int{
	"PAYMENTS_URL": 0, "INVENTORY_URL": 1,
	"USERS_URL": 2, "EMAIL_URL": 3, "CRM_URL": 4,
	"ARTICLES_URL": 5, "SEARCH_URL": 6, "SUBSCRIBERS_URL": 7,
	"BILLING_URL": 8, "SHIPPING_URL": 9,
	"PRODUCTS_A_URL": 10, "PRODUCTS_B_URL": 11, "LEVELS_URL": 12,
}

// Names lists the examples that have sample services.
func Names() []string {
	n := []string{"order", "registration", "publishing", "events"}
	sort.Strings(n)
	return n
}
