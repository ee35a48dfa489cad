package console

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkConsoleConnect measures the time from a technician's action to
// the first byte of a new terminal on the same agent, over loopback:
//
//   - browser: the click on Connect in the console, a WebRTC session
//     (signalling through the broker's HTTP API, ICE, DTLS, SCTP, the
//     terminal channel), to the first output byte in the page, by the
//     page's own clock (window.rmTiming); browser-cold: the same from the
//     opening of a session page's URL, with nothing prepared.
//   - meshctl (the baseline): `meshctl connect MACHINE --mode interactive`
//     started, to the first byte of its stdout: the process start, the
//     bridge to the broker, the grant and a QUIC session.
//
// ns/op is that time. The broker lets a technician open 5 sessions a
// second after a burst of 10, so each iteration takes at least 210 ms;
// the wait is outside the measured time.
func BenchmarkConsoleConnect(b *testing.B) {
	f := newFleet(b)
	alice := f.technician("alice", "acme,globex", "read-only,interactive")
	fs01 := f.agents["acme-fs01"]

	// browser: the machine page is open half a second before the click,
	// as a technician reads it; it prepares the connection meanwhile
	// (warm.js). browser-cold opens the session page straight from its
	// URL: everything from scratch, timed from the page's opening.
	for _, cold := range []bool{false, true} {
		name := "browser"
		if cold {
			name = "browser-cold"
		}
		b.Run(name, func(b *testing.B) {
			br := newBrowser(b)
			br.signIn(f.http, alice, "alice")
			var total time.Duration
			sums := map[string]float64{}
			for b.Loop() {
				began := time.Now()
				if cold {
					br.run("open a session page", chromedp.Navigate(f.http+"/#/session?machine="+fs01.id+"&mode=interactive"))
				} else {
					br.run("open the machine", chromedp.Navigate(f.http+"/#/machine/"+fs01.id))
					br.waitFor("the connect button", `document.querySelector('#machine') && document.querySelector('#connect') && !document.querySelector('#connect').disabled`, 10*time.Second)
					time.Sleep(500 * time.Millisecond)
					br.run("connect", chromedp.SetValue(chromedp.CSS("#connect-mode"), "interactive"), chromedp.Click(chromedp.CSS("#connect")))
				}
				ctx, cancel := context.WithTimeout(br.ctx, 20*time.Second)
				ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`new Promise((resolve) => {
					const poll = () => (window.rmTiming && window.rmTiming.firstByte)
						? resolve(window.rmTiming.firstByte - window.rmTiming.start)
						: setTimeout(poll, 2);
					poll();
				})`, chromedp.EvalAwaitPromise))
				cancel()
				if err != nil {
					b.Fatalf("first byte: %v\n%s", err, br.pageText())
				}
				total += time.Duration(ms * float64(time.Millisecond))
				// Where the time went, by the page's performance marks.
				phases, _ := eval[map[string]float64](br, `(() => {
					const out = {};
					for (const n of ['start', 'termstart', 'termend', 'ice', 'offer', 'gathered', 'answer', 'open']) {
						const e = performance.getEntriesByName('rm:' + n).at(-1);
						if (e && e.startTime >= window.rmTiming.start) out[n] = e.startTime - window.rmTiming.start;
					}
					out.firstByte = window.rmTiming.firstByte - window.rmTiming.start;
					return out;
				})()`)
				for k, v := range phases {
					sums[k] += v
				}
				br.run("disconnect", chromedp.Click(chromedp.CSS("#disconnect")))
				time.Sleep(210*time.Millisecond - time.Since(began))
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
			var parts []string
			for _, k := range []string{"start", "termstart", "termend", "ice", "offer", "gathered", "answer", "open", "firstByte"} {
				if v, ok := sums[k]; ok {
					parts = append(parts, fmt.Sprintf("%s %.1f ms", k, v/float64(b.N)))
				}
			}
			b.Logf("mean time to each stage: %s", strings.Join(parts, ", "))
		})
	}

	b.Run("meshctl", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			began := time.Now()
			total += meshctlFirstByte(b, alice, fs01.id)
			time.Sleep(210*time.Millisecond - time.Since(began))
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	})
}

// meshctlFirstByte starts meshctl connect and returns the time until its
// terminal's first output byte; then it ends the shell.
func meshctlFirstByte(b *testing.B, c *tech, machine string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.meshctl, "connect", machine, "--mode", "interactive")
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+c.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(stdout, one); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("meshctl connect: no output: %v", err)
	}
	took := time.Since(start)
	stdin.Write([]byte("exit\n"))
	stdin.Close()
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("meshctl connect: %v", err)
	}
	return took
}
