package target

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "120", 120 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces", "  5 ", 5 * time.Second, true},
		{"cap", "86401", MaxRetryAfter, true},
		{"at cap", "86400", MaxRetryAfter, true},
		{"overflow", "99999999999999999999999", MaxRetryAfter, true},
		{"imf-fixdate", "Sat, 01 Mar 2025 12:01:30 GMT", 90 * time.Second, true},
		{"rfc850", "Saturday, 01-Mar-25 12:00:10 GMT", 10 * time.Second, true},
		{"asctime", "Sat Mar  1 12:00:05 2025", 5 * time.Second, true},
		{"date now", "Sat, 01 Mar 2025 12:00:00 GMT", 0, true},
		{"date past", "Fri, 28 Feb 2025 12:00:00 GMT", 0, true},
		{"date far", "Sat, 01 Mar 2035 12:00:00 GMT", MaxRetryAfter, true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"bad date", "Sat, 99 Mar 2025 12:00:00 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseRetryAfter(tt.v, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
