package benchrun

import (
	"testing"
	"time"
)

const wrkOut = `Running 2s test @ http://127.0.0.1:8080/orders
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  10.00ms   75.00%
    Req/Sec    20.00k     1.00k   22.00k    80.00%
  Latency Distribution
     50%  810.00us
     75%    1.40ms
     90%    1.80ms
     99%    3.20ms
  80000 requests in 2.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  40000.00
Transfer/sec:      5.00MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 80000 - 12, Errors: 12 + 3, Elapsed: 2 * time.Second, P50: 810 * time.Microsecond, P99: 3200 * time.Microsecond}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("no error for output without a request count")
	}
}

func TestCombine(t *testing.T) {
	a := loadResult{Requests: 100, Errors: 1, Elapsed: time.Second, P50: time.Millisecond, P99: 3 * time.Millisecond}
	b := loadResult{Requests: 300, Errors: 0, Elapsed: time.Second, P50: 3 * time.Millisecond, P99: 5 * time.Millisecond}
	got := combine(combine(loadResult{}, a), b)
	if got.Requests != 400 || got.Errors != 1 || got.RPS() != 200 || got.P50 != 2*time.Millisecond || got.P99 != 4*time.Millisecond {
		t.Errorf("combined %+v", got)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr bool
		want    []string
	}{
		{"defaults", Options{Binary: "x", Wrk: "true"}, false, []string{"p1", "p2", "p3", "p3b", "p4", "p5"}},
		{"with postgres", Options{Binary: "x", Wrk: "true", Postgres: "postgres://x"}, false, allFigures},
		{"p6 without a dsn", Options{Binary: "x", Wrk: "true", Only: []string{"p6"}}, true, nil},
		{"unknown figure", Options{Binary: "x", Wrk: "true", Only: []string{"p9"}}, true, nil},
		{"no binary", Options{Wrk: "true"}, true, nil},
		{"no wrk", Options{Binary: "x", Wrk: "/nonexistent/wrk"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.setDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && len(tt.o.Only) != len(tt.want) {
				t.Errorf("figures %v, want %v", tt.o.Only, tt.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name              string
		samples           []int64
		offered, accepted float64
		growth            float64
		flat              bool
	}{
		{"steady", []int64{0, 50, 60, 40, 70, 50, 60, 55}, 1000, 1000, 7.5, true},
		{"growing", []int64{0, 500, 1000, 1500, 2000, 2500, 3000, 3500}, 1000, 1000, 2000, false},
		{"within the slack", []int64{0, 0, 0, 0, 0, 0, 900, 900}, 1000, 1000, 900, true},
		{"accepts fell short", []int64{0, 0, 0, 0, 0, 0, 0, 0}, 1000, 900, 0, false},
		{"too few samples", []int64{1, 2, 3}, 1000, 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, f := judge(tt.samples, tt.offered, tt.accepted)
			if g != tt.growth || f != tt.flat {
				t.Errorf("judge: growth %v flat %v, want %v %v", g, f, tt.growth, tt.flat)
			}
		})
	}
}
