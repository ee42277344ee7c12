package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
)

// replica is one slot of `tandem serve`: a fixed listen address and the
// generation now running there (a restart increments it).
type replica struct {
	idx    int
	listen string
	base   string

	mu    sync.Mutex // held while starting or stopping
	gen   int
	cmd   *exec.Cmd
	done  chan struct{} // closed when the running generation exited
	alive atomic.Bool   // a generation is running
}

// cluster runs the replicas of one store.
type cluster struct {
	bin      string
	dir      string
	config   func(replica, gen int) string // the YAML of one incarnation
	replicas []*replica
	faults   *faultLog
}

// faultLog collects the faults that struck processes, for the checker.
type faultLog struct {
	mu     sync.Mutex
	faults []history.Fault
}

func (l *faultLog) add(f history.Fault) {
	l.mu.Lock()
	l.faults = append(l.faults, f)
	l.mu.Unlock()
}

func (l *faultLog) all() []history.Fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]history.Fault(nil), l.faults...)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func newCluster(bin, dir string, n int, config func(replica, gen int) string, faults *faultLog) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir, config: config, faults: faults}
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		c.replicas = append(c.replicas, &replica{idx: i, listen: addr, base: "http://" + addr})
	}
	return c, nil
}

// bases lists the replicas' URLs.
func (c *cluster) bases() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.base
	}
	return out
}

// start starts the next generation of replica i and waits until it is
// ready. It does nothing when that replica is running. A generation that
// exits at start (its database is cut off, say) is followed by the next,
// for up to 30s.
func (c *cluster) start(ctx context.Context, i int) error {
	r := c.replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r.alive.Load() {
			return nil
		}
		err := c.launch(ctx, r, deadline)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		if !sleepUntil(ctx, time.Now().Add(300*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// launch starts one generation and waits until it is ready, or until the
// deadline (then it stays up and the load moves on to the others).
func (c *cluster) launch(ctx context.Context, r *replica, deadline time.Time) error {
	i := r.idx
	r.gen++
	gen := r.gen
	cfgPath := filepath.Join(c.dir, fmt.Sprintf("tandem-%d-%d.yaml", i, gen))
	if err := os.WriteFile(cfgPath, []byte(c.config(i, gen)), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("tandem-%d-%d.log", i, gen)))
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "serve", "--config", cfgPath, "--listen", r.listen)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start replica %d: %w", i, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	r.alive.Store(true)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			r.alive.Store(false)
			return fmt.Errorf("replica %d gen %d exited at start (see %s)", i, gen, logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil
		}
	}
}

// signal sends sig to replica i's running generation and waits until it
// is gone (SIGTERM: up to grace, then SIGKILL). It records the fault and
// reports false when the replica was not running.
func (c *cluster) signal(i int, sig syscall.Signal, grace time.Duration) (bool, error) {
	r := c.replicas[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.alive.Load() {
		return false, nil
	}
	kind := history.Kill
	if sig == syscall.SIGTERM {
		kind = history.Stop
	}
	start := time.Now()
	if err := r.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return false, fmt.Errorf("signal replica %d: %w", i, err)
	}
	select {
	case <-r.done:
	case <-time.After(grace):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.alive.Store(false)
	c.faults.add(history.Fault{Kind: kind, Replica: i, Gen: r.gen, Start: start, End: time.Now()})
	return true, nil
}

// stopAll stops every replica gracefully (they are not faults).
func (c *cluster) stopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.alive.Load() {
				return
			}
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(grace):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
			r.alive.Store(false)
		}()
	}
	wg.Wait()
}

// live returns the URL of a running replica, preferring i.
func (c *cluster) live(i int) string {
	for k := range c.replicas {
		r := c.replicas[(i+k)%len(c.replicas)]
		if r.alive.Load() {
			return r.base
		}
	}
	return c.replicas[i%len(c.replicas)].base
}

// anyLive reports whether some replica is running.
func (c *cluster) anyLive() bool {
	for _, r := range c.replicas {
		if r.alive.Load() {
			return true
		}
	}
	return false
}
