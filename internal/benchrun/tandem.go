package benchrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a `tandem serve` process, started as a user would start it.
type child struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	stderr *bytes.Buffer
	exited chan error
}

// storeSpec says which store a child runs on.
type storeSpec struct {
	driver, dsn string
}

// configYAML is the bench's tandem.yaml: the routes every figure uses.
//
//   - /fan: durable: false, respond: all to both sinks (P1).
//   - /orders: respond: accepted, delivered to both sinks (P2, P3, P3b, P6).
//   - /wait: durable, respond: all (P4).
//   - /parked: durable, to two targets on a closed port, so its deliveries
//     stay in the backlog (P5).
func configYAML(listen string, st storeSpec, a, b, dead string) string {
	return fmt.Sprintf(`server: { listen: %q }
store: { driver: %s, dsn: %q }
log: { level: warn }
targets:
  fa: { url: "%s/a", concurrency: 1024 }
  fb: { url: "%s/b", concurrency: 1024 }
  a: { url: "%s/a", concurrency: 64 }
  b: { url: "%s/b", concurrency: 64 }
  pa: { url: "%s/a", concurrency: 4, retry: { max_attempts: 1000, initial: 30s, max: 5m } }
  pb: { url: "%s/b", concurrency: 4, retry: { max_attempts: 1000, initial: 30s, max: 5m } }
routes:
  - name: fan
    path: /fan
    respond: all
    durable: false
    deadline: 10s
    steps: [{ name: a, target: fa }, { name: b, target: fb }]
  - name: orders
    path: /orders
    respond: accepted
    steps: [{ name: a, target: a }, { name: b, target: b }]
  - name: wait
    path: /wait
    respond: all
    deadline: 10s
    steps: [{ name: a, target: a }, { name: b, target: b }]
  - name: parked
    path: /parked
    respond: accepted
    steps: [{ name: a, target: pa }, { name: b, target: pb }]
`, listen, st.driver, st.dsn, a, b, a, b, dead, dead)
}

// freePort returns a loopback address nothing listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startChild writes the config into dir and starts `tandem serve` on it;
// it returns once /readyz answers 200.
func startChild(ctx context.Context, o *Options, dir string, st storeSpec, a, b, dead string, env []string) (*child, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(configYAML(addr, st, a, b, dead)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Binary, "serve", "--config", path)
	cmd.Dir = dir
	c := &child{cmd: cmd, url: "http://" + addr, dir: dir, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout = c.stderr
	cmd.Stderr = c.stderr
	cmd.Env = append(os.Environ(), env...)
	if o.ProfileDir != "" {
		cmd.Env = append(cmd.Env, "TANDEM_PROFILE_DIR="+filepath.Join(o.ProfileDir, filepath.Base(dir)))
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", o.Binary, err)
	}
	go func() { c.exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-c.exited:
			c.exited <- err
			return nil, fmt.Errorf("tandem serve exited: %v: %s", err, tail(c.stderr.String()))
		default:
		}
		resp, err := http.Get(c.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, fmt.Errorf("tandem serve not ready after 60s: %s", tail(c.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// stop ends the process with SIGTERM (a graceful shutdown, which writes
// its profiles), SIGKILL after 20s.
func (c *child) stop() error {
	if c == nil || c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil
		}
		return err
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-c.exited
	}
}

// rss is the process's resident set and its peak, in MiB, from
// /proc/PID/status.
func (c *child) rss() (now, peak float64) {
	return procRSS(c.cmd.Process.Pid)
}

func procRSS(pid int) (now, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			now = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return now, peak
}

// cpuSeconds is the CPU time (user + system) the process has used, from
// /proc/PID/stat.
func (c *child) cpuSeconds() float64 {
	return procCPU(c.cmd.Process.Pid)
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	// Fields after the name: state is f[0]; utime is field 14 of the
	// line, f[11] here; stime f[12]. Clock ticks are 100 per second on
	// Linux.
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
