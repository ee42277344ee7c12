package typo

import "testing"

func TestClosest(t *testing.T) {
	t.Parallel()
	known := []string{"retry", "rate_limit", "breaker", "timeout"}
	tests := []struct{ in, want string }{
		{"retries", "retry"},
		{"braker", "breaker"},
		{"timeuot", "timeout"},
		{"Retry", "retry"},
		{"zz", ""},
		{"completely_different", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.in, known); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
