package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "2s", want: 2 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "24h", want: 24 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: " 10us ", want: 10 * time.Microsecond},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "30", err: `needs a unit, e.g. "30s"`},
		{in: "2.5", err: "needs a unit"},
		{in: "-1s", err: "must not be negative"},
		{in: "-0", err: "must not be negative"},
		{in: "", err: "empty duration"},
		{in: "soon", err: "invalid duration"},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "d", err: "invalid duration"},
		{in: "2d-1h", err: "invalid duration"},
		{in: "99999999999d", err: "invalid duration"},
		{in: "99999999999h", err: "invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseDuration(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got.D() != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.D(), err, tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := map[time.Duration]string{
		0:                       "0s",
		500 * time.Millisecond:  "500ms",
		30 * time.Second:        "30s",
		90 * time.Second:        "90s",
		5 * time.Minute:         "5m",
		24 * time.Hour:          "24h",
		1500 * time.Microsecond: "1.5ms",
	}
	for d, want := range tests {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back.D() != d {
			t.Errorf("round trip of %v = %v, %v", d, back.D(), err)
		}
	}
	b, err := json.Marshal(struct{ D Duration }{Duration(2 * time.Second)})
	if err != nil || string(b) != `{"D":"2s"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("250ms")); err != nil || d.D() != 250*time.Millisecond {
		t.Errorf("UnmarshalText = %v, %v", d, err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{in: "512", want: 512},
		{in: "0", want: 0},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "1MiB", want: 1 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "10KB", want: 10000},
		{in: "1MB", want: 1000000},
		{in: "3GB", want: 3e9},
		{in: "1mib", want: 1 << 20},
		{in: "64 KiB", want: 64 << 10},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "9223372036854775808", err: "too large"},
		{in: "8388608TiB", err: "too large"},
		{in: "-1", err: "must not be negative"},
		{in: "", err: "empty size"},
		{in: "KiB", err: "invalid size"},
		{in: "lots", err: "invalid size"},
		{in: "1.5MiB", err: "whole number"},
		{in: "10K", err: `unknown unit "K"`},
		{in: "1e3", err: "unknown unit"},
		{in: "0x10", err: "unknown unit"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSize(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got.Int64() != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	tests := map[int64]string{0: "0B", 512: "512B", 1024: "1KiB", 1 << 20: "1MiB", 64 << 10: "64KiB", 10000: "10KB", 1500: "1500B", 3e9: "3GB"}
	for n, want := range tests {
		if got := Size(n).String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", n, got, want)
		}
		back, err := ParseSize(Size(n).String())
		if err != nil || back.Int64() != n {
			t.Errorf("round trip of %d = %d, %v", n, back, err)
		}
	}
	b, _ := json.Marshal(Size(1 << 20))
	if string(b) != `"1MiB"` {
		t.Errorf("json = %s", b)
	}
}

func TestSizeAndDurationYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml    string
		maxBody Size
		grace   Duration
	}{
		{"{max_body: 2048, shutdown_grace: 0}", 2048, DefaultShutdownGrace},
		{"{max_body: '2KiB', shutdown_grace: '1m'}", 2048, Duration(time.Minute)},
		{"{max_body: 0x800, shutdown_grace: 1h}", 2048, Duration(time.Hour)},
		{"{max_body: ~, shutdown_grace: ~}", DefaultMaxBody, DefaultShutdownGrace},
		{"{max_body: &m 2KiB, shutdown_grace: 5s, listen: ':1'}", 2048, Duration(5 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, "server: "+tt.yaml+"\n"+minimal, nil)
			if cfg.Server.MaxBody != tt.maxBody || cfg.Server.ShutdownGrace != tt.grace {
				t.Errorf("server = %+v", cfg.Server)
			}
		})
	}
}

func TestRespondYAMLAndJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		respond string
		want    Respond
		json    string
	}{
		{"", Respond{Mode: RespondAccepted}, `"accepted"`},
		{"accepted", Respond{Mode: RespondAccepted}, `"accepted"`},
		{"all", Respond{Mode: RespondAll}, `"all"`},
		{"[a]", Respond{Mode: RespondSteps, Steps: []string{"a"}}, `["a"]`},
		{"\n      - a\n      - b", Respond{Mode: RespondSteps, Steps: []string{"a", "b"}}, `["a","b"]`},
	}
	for _, tt := range tests {
		t.Run(tt.respond, func(t *testing.T) {
			t.Parallel()
			src := minimal + "      - {name: b, target: pay}\n"
			if tt.respond != "" {
				src = strings.Replace(src, "path: /r", "path: /r\n    respond: "+tt.respond, 1)
			}
			got := mustParse(t, src, nil).Routes[0].Respond
			if got.Mode != tt.want.Mode || strings.Join(got.Steps, ",") != strings.Join(tt.want.Steps, ",") {
				t.Errorf("respond = %+v, want %+v", got, tt.want)
			}
			b, err := json.Marshal(got)
			if err != nil || string(b) != tt.json {
				t.Errorf("json = %s, %v; want %s", b, err, tt.json)
			}
		})
	}
	if s := (Respond{Mode: RespondSteps, Steps: []string{"a", "b"}}).String(); s != "[a, b]" {
		t.Errorf("String = %q", s)
	}
}
