package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, format, level string
		wantDebug           bool
		wantInfo            bool
		check               func(t *testing.T, out string)
	}{
		{"defaults", "", "", false, true, func(t *testing.T, out string) {
			if !strings.Contains(out, `level=INFO msg=hello key=v`) {
				t.Errorf("text output %q", out)
			}
		}},
		{"json debug", "json", "debug", true, true, func(t *testing.T, out string) {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("line %q is not JSON: %v", line, err)
				}
				if rec["msg"] == nil || rec["level"] == nil || rec["time"] == nil {
					t.Errorf("line %q lacks msg, level or time", line)
				}
			}
		}},
		{"text warn", "TEXT", "Warn", false, false, nil},
		{"error", "text", "error", false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.format, tt.level)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debugging", "key", "v")
			log.Info("hello", "key", "v")
			out := buf.String()
			if got := strings.Contains(out, "debugging"); got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v", got, tt.wantDebug)
			}
			if got := strings.Contains(out, "hello"); got != tt.wantInfo {
				t.Errorf("info logged = %v, want %v", got, tt.wantInfo)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}

func TestNewLoggerRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, format, level, want string }{
		{"format", "xml", "info", `log format "xml"`},
		{"level", "text", "loud", `log level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewLogger(&bytes.Buffer{}, tt.format, tt.level)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
