package sampleapi

import (
	"fmt"
	"net/http"
)

// Billing answers POST /invoices {"order", "total"} with {"id": "inv_N",
// "order", "total"} (201); an invoice without a total is refused with 422.
func Billing() *Service {
	s := New("billing")
	s.Handle(http.MethodPost, "/invoices", func(c *Call) (int, any) {
		var in struct {
			Order string `json:"order"`
			Total any    `json:"total"`
		}
		if err := c.JSON(&in); err != nil || in.Total == nil {
			return http.StatusUnprocessableEntity, map[string]string{"error": "total is required"}
		}
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("inv_%d", s.Next("inv")), "order": in.Order, "total": in.Total}
	})
	return s
}

// Shipping answers POST /shipments {"order", ...} with {"id": "sh_N",
// "order"} (201).
func Shipping() *Service {
	s := New("shipping")
	s.Handle(http.MethodPost, "/shipments", func(c *Call) (int, any) {
		var in struct {
			Order string `json:"order"`
		}
		if err := c.JSON(&in); err != nil || in.Order == "" {
			return http.StatusUnprocessableEntity, map[string]string{"error": "order is required"}
		}
		return http.StatusCreated, map[string]any{"id": fmt.Sprintf("sh_%d", s.Next("sh")), "order": in.Order}
	})
	return s
}
