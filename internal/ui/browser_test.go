package ui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The dashboard in a real browser: chromedp drives Debian's Chromium.

var update = flag.Bool("update", false, "rewrite the screenshots under docs/ui")

const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium and returns a context for its tab.
// Without Chromium the test is skipped, unless CI is set: then it fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed at %s (apt-get install -y chromium)", chromiumPath)
		}
		t.Skipf("chromium is not installed at %s", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	limit := 3 * time.Minute
	if raceEnabled {
		limit = 6 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// js evaluates a JavaScript expression in the page.
func js[T any](t *testing.T, ctx context.Context, what, expr string) T {
	t.Helper()
	return value(t, ctx, what, chromedp.Evaluate[T](expr))
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	if raceEnabled {
		deadline = deadline.Add(60 * time.Second)
	}
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("timed out waiting for %s (%s); page: %.2000s", what, expr, html)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return value(t, ctx, "read the location", chromedp.Location())
}

// TestBrowserReplayDeadLetter walks an operator's path with keys
// configured: log in, open the overview, go to the dead letters, replay
// one once its target is fixed, watch its delivery turn succeeded live on
// the message page, log out.
func TestBrowserReplayDeadLetter(t *testing.T) {
	s := newStack(t, true)
	ctx := browser(t)
	dead := s.send(t, "/orders", `{"total": 2}`)
	waitFor(t, "the dead letter", func() bool { return s.messageStatus(t, dead) == "partially_succeeded" })

	// Keyboard: the key is typed and the form sent with Enter; on the
	// overview the first Tab reaches the skip link.
	run(t, ctx, "open the overview",
		chromedp.Navigate(s.srv.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("key")),
	)
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/login?next=%2Fui%2F") {
		t.Fatalf("without a session the overview sent to %s, want the login form", loc)
	}
	run(t, ctx, "log in",
		chromedp.Focus(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), adminKey+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("dead-count")),
	)
	// A fresh load of the overview, so no key of the login form is in flight.
	run(t, ctx, "reload the overview", chromedp.Navigate(s.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.ID("dead-count")))
	run(t, ctx, "tab to the skip link", chromedp.KeyEvent(kb.Tab))
	if active := js[string](t, ctx, "read the focus", `document.activeElement.className`); active != "skip" {
		t.Errorf("the first Tab focused %q, want the skip link", active)
	}
	deadCount := value(t, ctx, "read the dead letters count", chromedp.Text(chromedp.ID("dead-count")))
	if deadCount != "1" {
		t.Errorf("overview: %q dead letters, want 1", deadCount)
	}

	run(t, ctx, "go to the dead letters",
		chromedp.Click(chromedp.CSS(`nav a[href="/ui/dead-letters"]`)),
		chromedp.WaitVisible(chromedp.ID("dead-letters")),
	)
	// The target is fixed meanwhile; its answers are held back, so the
	// message page sees the delivery before it succeeds.
	s.shipping.status.Store(200)
	s.shipping.hold()
	run(t, ctx, "replay the dead letter",
		chromedp.Click(chromedp.CSS(`#dead-letters tbody input[type=checkbox]`)),
		chromedp.Click(chromedp.ID("replay-selected")),
		chromedp.WaitVisible(chromedp.ID("confirm")),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("result-count")),
	)
	result := value(t, ctx, "read the result", chromedp.Text(chromedp.ID("result-count")))
	if !strings.HasPrefix(result, "Replayed 1") {
		t.Fatalf("result %q, want Replayed 1", result)
	}
	run(t, ctx, "open the message",
		chromedp.Click(chromedp.CSS("a.message-link")),
		chromedp.WaitVisible(chromedp.ID("message-status")),
	)
	if loc := location(t, ctx); !strings.HasSuffix(loc, "/ui/messages/"+dead) {
		t.Fatalf("the result linked to %s, want the message %s", loc, dead)
	}
	ship := `document.querySelector('[data-step="ship"]').textContent.trim()`
	before := js[string](t, ctx, "mark the page", `window.__sameDocument = 42; `+ship)
	if before == "succeeded" {
		t.Fatalf("the delivery succeeded before its target answered")
	}
	waitJS(t, ctx, "the event stream to connect", `document.getElementById("live-state").textContent === "live"`)
	s.shipping.release()
	waitJS(t, ctx, "the delivery to turn succeeded live", ship+` === "succeeded"`)
	waitJS(t, ctx, "the message to turn succeeded live", `document.getElementById("message-status").textContent.trim() === "succeeded"`)
	waitJS(t, ctx, "no reload", `window.__sameDocument === 42`)

	run(t, ctx, "log out",
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.Navigate(s.srv.URL+"/ui/targets"),
		chromedp.WaitVisible(chromedp.ID("key")),
	)
	if loc := location(t, ctx); !strings.Contains(loc, "/ui/login") {
		t.Fatalf("after logout /ui/targets showed %s, want the login form", loc)
	}
}

// TestBrowserLoopbackLive: with no keys a loopback client needs no login,
// and a new message appears on the messages page without a reload.
func TestBrowserLoopbackLive(t *testing.T) {
	s := newStack(t, false)
	ctx := browser(t)
	first := s.send(t, "/orders", `{}`)
	run(t, ctx, "open the messages",
		chromedp.Navigate(s.srv.URL+"/ui/messages"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="`+first+`"]`)),
	)
	logout := js[int](t, ctx, "look for a logout", `document.querySelectorAll("#logout").length`)
	if logout != 0 {
		t.Error("a logout button without keys")
	}
	js[bool](t, ctx, "mark the page", `window.__sameDocument = 7; true`)
	waitJS(t, ctx, "the event stream to connect", `document.getElementById("live-state").textContent === "live"`)
	next := s.send(t, "/orders", `{}`)
	waitJS(t, ctx, "the new message to appear", `!!document.querySelector('tr[data-id="`+next+`"]')`)
	waitJS(t, ctx, "no reload", `window.__sameDocument === 7`)
}

// TestBrowserScreenshots renders every page at 1280 and 390 px wide and
// checks that none is wider than the window (tables scroll inside their
// frame); with -update it writes the screenshots to docs/ui.
func TestBrowserScreenshots(t *testing.T) {
	s := newStack(t, true)
	ctx := browser(t)
	// Some history: deliveries that succeeded, a dead letter, and a saga
	// whose second step failed, so its first was compensated.
	s.shipping.status.Store(200)
	var last string
	for range 3 {
		last = s.send(t, "/orders", `{"total": 5, "card_number": "4111111111111111"}`)
	}
	waitFor(t, "the orders", func() bool { return s.messageStatus(t, last) == "succeeded" })
	s.shipping.status.Store(400)
	dead := s.send(t, "/orders", `{"total": 7}`)
	s.inventory.status.Store(409)
	s.payments.failFirst.Store(2) // two transient failures, then success
	saga := s.send(t, "/place-order", `{"items": ["a", "b"], "total": 12}`, "Idempotency-Key", "order-1001",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	waitFor(t, "the saga to be compensated", func() bool { return s.messageStatus(t, saga) == "compensated" })
	waitFor(t, "the dead letter", func() bool { return s.messageStatus(t, dead) == "partially_succeeded" })

	run(t, ctx, "open the login form", chromedp.Navigate(s.srv.URL+"/ui/login"), chromedp.WaitVisible(chromedp.ID("key")))
	shoot(t, ctx, "login")
	run(t, ctx, "log in", chromedp.SendKeys(chromedp.ID("key"), adminKey), chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.ID("dead-count")))
	for _, p := range []struct{ name, path, ready string }{
		{"overview", "/ui/", "#dead-count"},
		{"messages", "/ui/messages", "#messages"},
		{"message", "/ui/messages/" + saga, "#message-status"},
		{"dead-letters", "/ui/dead-letters", "#dead-letters"},
		{"targets", "/ui/targets", "#targets"},
	} {
		run(t, ctx, "open "+p.path, chromedp.Navigate(s.srv.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		shoot(t, ctx, p.name)
	}
}

// shoot checks the page at both widths, and with -update writes
// docs/ui/<name>-<width>.png.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, w := range []int64{1280, 390} {
		h := int64(900)
		if w == 390 {
			h = 844
		}
		what := fmt.Sprintf("%s at %d px", name, w)
		run(t, ctx, what,
			chromedp.EmulateViewport(w, h),
			chromedp.Sleep(100*time.Millisecond), // let the layout settle after the resize
		)
		overflow := js[bool](t, ctx, what, `document.documentElement.scrollWidth > window.innerWidth + 1`)
		png := value(t, ctx, what, chromedp.FullScreenshot(100))
		if overflow {
			t.Errorf("%s at %d px is wider than the window", name, w)
		}
		if *update {
			dir := filepath.Join("..", "..", "docs", "ui")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(t, ctx, "reset the viewport", chromedp.EmulateViewport(1280, 900))
}
