package console

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser is one headless chromium with its own profile: one signed-in
// technician.
type browser struct {
	tb  testing.TB
	ctx context.Context
}

// newBrowser starts Debian's chromium. Loopback host candidates are off
// in browsers by default and host addresses hidden behind mDNS names; the
// namespace has nothing but loopback, so the tests turn both back on.
func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, // root, in a container
		chromedp.DisableGPU,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancel()
		acancel()
	})
	b := &browser{tb: tb, ctx: ctx}
	b.run("start chromium")
	return b
}

// run runs chromedp actions with a 30 s bound, failing the test with
// what it was doing.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.tb.Helper()
	if len(steps) == 0 {
		// The first call starts the browser: no timeout on it (it would
		// bound the browser's life).
		if err := chromedp.Do(b.ctx); err != nil {
			b.tb.Fatalf("browser: %s: %v", what, err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.tb.Fatalf("browser: %s: %v\npage:\n%s", what, err, b.pageText())
	}
}

// eval evaluates js and decodes its result as a T.
func eval[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// waitFor polls js (an expression) until it is true, up to d.
func (b *browser) waitFor(what, js string, d time.Duration) time.Duration {
	b.tb.Helper()
	start := time.Now()
	var lastErr error
	for time.Since(start) < d {
		var ok bool
		if ok, lastErr = eval[bool](b, "!!("+js+")"); lastErr == nil && ok {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.tb.Fatalf("browser: %s: not after %v (last error %v)\npage:\n%s", what, d, lastErr, b.pageText())
	return 0
}

// text returns the text content of the first element matching sel, or ""
// when there is none.
func (b *browser) text(sel string) string {
	raw, _ := json.Marshal(sel)
	s, _ := eval[string](b, "(document.querySelector("+string(raw)+")||{}).textContent||''")
	return s
}

// terminal is what the page's terminal shows.
func (b *browser) terminal() string { return b.text("#terminal .xterm-rows") }

// typeInto types text into the terminal as keystrokes ("\r" is Enter).
//
// Each key is one keyDown that carries its text, then a keyUp, as a real
// key press reaches the page. (chromedp's SendKeys sends the text in a
// separate char event; xterm.js then sees the key twice.)
func (b *browser) typeInto(text string) {
	b.tb.Helper()
	b.run("focus the terminal", chromedp.Focus(chromedp.CSS("#terminal .xterm-helper-textarea")))
	b.keys(text)
}

// keys presses keys on whatever has the focus. Runes are typed; names in
// kb (kb.ArrowDown, kb.Enter) press that key.
func (b *browser) keys(text string) {
	b.tb.Helper()
	b.run("press keys", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range text {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Text: string(r), UnmodifiedText: string(r), Key: string(r)}
			if k, ok := kb.Keys[r]; ok {
				down.Key, down.Code, down.WindowsVirtualKeyCode, down.NativeVirtualKeyCode = k.Key, k.Code, k.Windows, k.Native
				if k.Shift {
					down.Modifiers = 8 // shift
				}
				if !k.Print {
					down.Text, down.UnmodifiedText = "", ""
					if k.Key == "Enter" {
						down.Text = "\r"
					}
				}
			}
			up := down
			up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href + '\\n' + (document.body ? document.body.innerText : '')"))
	return tail(s, 80)
}

// screenshot saves the viewport as name under the test's artifact
// directory (bin/test-output/_artifacts with make test).
func (b *browser) screenshot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
	return path
}

// setField sets a form field's value and fires its input and change
// events, as a person editing it would.
func (b *browser) setField(sel, value string) {
	b.tb.Helper()
	rs, _ := json.Marshal(sel)
	rv, _ := json.Marshal(value)
	b.run("set "+sel, chromedp.Evaluate[chromedp.Void](`(() => {
		const el = document.querySelector(`+string(rs)+`);
		el.value = `+string(rv)+`;
		el.dispatchEvent(new Event('input', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true}));
	})()`))
}

// rows returns the data-name of the fleet's machine rows, in page order.
func (b *browser) rows() []string {
	names, _ := eval[[]string](b, `[...document.querySelectorAll('tr.machine')].map((r) => r.dataset.name)`)
	return names
}

// on returns b reporting to tb: a subtest's failures are its own.
func (b *browser) on(tb testing.TB) *browser { return &browser{tb: tb, ctx: b.ctx} }

// signIn opens a one-time link of c and signs in, waiting for the fleet.
func (b *browser) signIn(base string, c *tech, name string) {
	b.tb.Helper()
	link := c.consoleLink()
	b.run("open the sign-in link", chromedp.Navigate(link.URL))
	b.waitFor("the code pre-filled", `document.querySelector('#login-code') && document.querySelector('#login-code').value.startsWith('rmc1_')`, 10*time.Second)
	b.run("sign in", chromedp.Click(chromedp.CSS("#login-submit")))
	b.waitFor("signed in as "+name, `(document.querySelector('#whoami')||{}).textContent === '`+name+`'`, 10*time.Second)
}
