package meshctl

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// openSession connects to the broker and opens a session.
func (e *env) openSession(machine, mode, transport string) (*mesh.Session, *tech.Client, error) {
	c, err := e.connect()
	if err != nil {
		return nil, nil, err
	}
	// Long enough for the person at the machine to answer a consent
	// request (the agent gives up after 2 minutes by default).
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Minute)
	defer cancel()
	s, via, err := c.Connect(ctx, machine, tech.SessionOptions{Mode: mode, Transport: transport,
		LocalAddr: os.Getenv("READYMESH_SESSION_ADDR"),
		Logger:    slog.New(slog.DiscardHandler)})
	if via != c && via != nil {
		// Redirected: the session's relay lives on via; close it with us.
		if err != nil {
			via.Close()
		} else {
			prev := e.client
			e.client = via
			prev.Close()
		}
	}
	return s, via, err
}

type sessionJSON struct {
	Session string  `json:"session"`
	Machine string  `json:"machine"`
	Mode    string  `json:"mode"`
	Path    string  `json:"path"`
	SetupMs float64 `json:"setup_ms"`
	Sent    int64   `json:"sent_bytes,omitempty"`
	Seconds float64 `json:"send_seconds,omitempty"`
	Mbps    float64 `json:"send_mbit_s,omitempty"`
}

// connect opens a live session: a terminal by default; with --hold it
// shows the path and follows it as it changes, and with --send it
// measures a bulk copy over it.
func (e *env) connectCmd(args []string) error {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	mode := fs.String("mode", wire.ModeReadOnly, "session `mode`: read-only, interactive or elevated")
	transport := fs.String("transport", wire.TransportAuto, "auto (relay first, then direct), quic (direct only), relay, or webrtc (ICE with the broker's STUN and TURN)")
	send := fs.String("send", "", "send this many bytes over the session (e.g. 64MiB), print the rate and end")
	hold := fs.Duration("hold", 0, "hold the session open this long, showing its path, with no terminal (default: open a terminal)")
	asJSON := fs.Bool("json", false, "print JSON")
	whenReachable := fs.Bool("when-reachable", false, "wait for the machine to come online first (see --wait)")
	waitFor := fs.Duration("wait", 10*time.Minute, "with --when-reachable: how long to wait")
	allow := fs.Bool("allow-observers", false, "let other technicians watch this terminal (they cannot type)")
	observe := fs.String("observe", "", "watch the terminal of this `session` (its whole ID), read-only")
	shell := fs.String("shell", "", "the terminal's shell: powershell, cmd or sh (default: the account's login shell; PowerShell on Windows)")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	if err := wire.ValidShell(*shell); err != nil {
		return fmt.Errorf("%w: --shell: %v", ErrUsage, err)
	}
	var size int64
	if *send != "" {
		if size, err = parseSize(*send); err != nil {
			return fmt.Errorf("%w: --send: %v", ErrUsage, err)
		}
	}
	if *whenReachable {
		if _, err := e.waitOnline(pos[0], *waitFor); err != nil {
			return err
		}
	}
	s, _, err := e.openSession(pos[0], *mode, *transport)
	if err != nil {
		return err
	}
	defer s.Close()
	out := sessionJSON{Session: s.ID, Machine: pos[0], Mode: s.Mode, Path: s.Path().String(),
		SetupMs: float64(s.Setup.Microseconds()) / 1000}
	if !*asJSON {
		id := s.ID[:8]
		if *allow {
			id = s.ID // observers name it whole
		}
		fmt.Fprintf(e.out, "session %s to %s (%s): %s, set up in %s\n", id, pos[0], s.Mode, s.Path(), s.Setup.Round(100*time.Microsecond))
	}
	if size == 0 && *hold == 0 && !*asJSON {
		return e.terminal(s, wire.TerminalRequest{AllowObservers: *allow, Observe: *observe, Shell: *shell})
	}
	if size > 0 {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Minute)
		defer cancel()
		start := time.Now()
		if err := s.Send(ctx, size); err != nil {
			return err
		}
		d := time.Since(start)
		out.Sent, out.Seconds = size, d.Seconds()
		out.Mbps = float64(size) * 8 / d.Seconds() / 1e6
		out.Path = s.Path().String()
		if *asJSON {
			return printJSON(e.out, out)
		}
		fmt.Fprintf(e.out, "sent %s in %s (%.0f Mbit/s) over %s\n", formatSize(size), d.Round(time.Millisecond), out.Mbps, s.Path())
		return nil
	}
	var timeout <-chan time.Time
	if *hold > 0 {
		t := time.NewTimer(*hold)
		defer t.Stop()
		timeout = t.C
	}
	for {
		changed := s.PathChanged()
		select {
		case <-e.ctx.Done():
			return finish(e, out, s, *asJSON)
		case <-timeout:
			return finish(e, out, s, *asJSON)
		case <-s.Done():
			return fmt.Errorf("session %s ended: the connection to the machine was lost", s.ID[:8])
		case <-changed:
			if !*asJSON {
				fmt.Fprintf(e.out, "path: %s\n", s.Path())
			}
		}
	}
}

func finish(e *env, out sessionJSON, s *mesh.Session, asJSON bool) error {
	out.Path = s.Path().String()
	if asJSON {
		return printJSON(e.out, out)
	}
	fmt.Fprintf(e.out, "session %s closed\n", s.ID[:8])
	return nil
}

type pongJSON struct {
	Seq   int     `json:"seq"`
	Path  string  `json:"path"`
	RTTMs float64 `json:"rtt_ms,omitempty"`
	Error string  `json:"error,omitempty"`
}

type pingJSON struct {
	Machine string     `json:"machine"`
	Session string     `json:"session"`
	Pongs   []pongJSON `json:"pongs"`
	Sent    int        `json:"sent"`
	Lost    int        `json:"lost"`
	P50Ms   float64    `json:"p50_ms"`
	MaxMs   float64    `json:"max_ms"`
	Path    string     `json:"path"`
}

// ping is tailscale ping's counterpart: each answer with the path it came
// over and its round trip. --until-direct stops at the first direct pong.
func (e *env) pingCmd(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	count := fs.Int("c", 10, "number of pings")
	interval := fs.Duration("interval", time.Second, "time between pings")
	timeout := fs.Duration("timeout", 2*time.Second, "wait this long for each answer")
	transport := fs.String("transport", wire.TransportAuto, "auto, quic, relay or webrtc")
	untilDirect := fs.Bool("until-direct", false, "stop at the first answer over a direct path")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	if *count < 1 || *count > 100000 || *interval < 10*time.Millisecond {
		return fmt.Errorf("%w: -c must be 1..100000 and --interval at least 10ms", ErrUsage)
	}
	s, _, err := e.openSession(pos[0], wire.ModeReadOnly, *transport)
	if err != nil {
		return err
	}
	defer s.Close()
	res := pingJSON{Machine: pos[0], Session: s.ID}
	var rtts []float64
	for i := 1; i <= *count; i++ {
		ctx, cancel := context.WithTimeout(e.ctx, *timeout)
		rtt, err := s.Ping(ctx)
		cancel()
		p := pongJSON{Seq: i, Path: s.Path().String()}
		res.Sent++
		if err != nil {
			res.Lost++
			p.Error = err.Error()
			if !*asJSON {
				fmt.Fprintf(e.out, "no answer from %s (seq %d) within %s\n", pos[0], i, *timeout)
			}
		} else {
			p.RTTMs = float64(rtt.Microseconds()) / 1000
			rtts = append(rtts, p.RTTMs)
			if !*asJSON {
				fmt.Fprintf(e.out, "pong from %s via %s in %s\n", pos[0], p.Path, fmtMs(p.RTTMs))
			}
		}
		res.Pongs = append(res.Pongs, p)
		if e.ctx.Err() != nil || (*untilDirect && err == nil && strings.HasPrefix(s.Path().Kind, "direct")) {
			break
		}
		if i < *count {
			select {
			case <-e.ctx.Done():
			case <-time.After(*interval):
			}
		}
	}
	res.Path = s.Path().String()
	if len(rtts) > 0 {
		sort.Float64s(rtts)
		res.P50Ms, res.MaxMs = rtts[len(rtts)/2], rtts[len(rtts)-1]
	}
	if *asJSON {
		return printJSON(e.out, res)
	}
	fmt.Fprintf(e.out, "%d sent, %d lost, median %s, max %s, path now %s\n", res.Sent, res.Lost, fmtMs(res.P50Ms), fmtMs(res.MaxMs), res.Path)
	if res.Lost == res.Sent {
		return fmt.Errorf("no answers from %s", pos[0])
	}
	return nil
}

func fmtMs(ms float64) string { return strconv.FormatFloat(ms, 'f', 2, 64) + "ms" }

// parseSize reads 123, 64KiB, 64MiB, 1GiB (also KB/MB/GB as powers of 1000).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSuffix(s, u.suffix), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v <= 0 || v*mul > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is not like 64MiB", s)
	}
	return int64(v * mul), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
