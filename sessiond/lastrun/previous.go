package lastrun

import (
	"cmp"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/readymesh/readymesh/peer/wire"
)

// maxCrashHead bounds what is read of crash output to find its first
// line: a crash with every goroutine's stack can run to megabytes, and
// the line that matters comes first.
const maxCrashHead = 64 << 10

// readPrevious reads what the previous run left in cfg.Dir: its marker,
// its crash output (moved aside for people) and the exit status the
// service manager recorded (deleted once read).
func readPrevious(cfg Config, now time.Time) Previous {
	var p Previous
	if t, err := cfg.BootTime(); err != nil {
		cfg.Logger.Debug("lastrun: boot time unknown", "err", err)
	} else {
		p.Booted = t.UTC()
	}
	crash, crashAt := takeCrash(cfg.Dir, cfg.Logger)
	exit := takeExitStatus(cfg.Dir, cfg.Logger)
	m, ok, err := readMarker(filepath.Join(cfg.Dir, MarkerFile))
	if err != nil {
		cfg.Logger.Warn("lastrun: previous run's marker unreadable", "dir", cfg.Dir, "err", err)
	}
	if !ok {
		p.First = true
		return p
	}
	p.LastAlive = m.Alive
	p.LastUnclean = m.LastUnclean
	p.Rebooted = !p.Booted.IsZero() && p.Booted.After(m.Alive)
	// A panic after Stopped (while shutting down) is still a crash.
	if m.Stopped && crash == "" {
		p.Clean, p.Reason = true, m.Reason
		return p
	}
	end := &wire.RunEnd{At: m.Alive, Detail: cmp.Or(crash, exit, NoExitRecorded)}
	if crash != "" && crashAt.After(end.At) && !crashAt.After(now) {
		end.At = crashAt.UTC() // the runtime wrote it as it died
	}
	p.Unclean, p.LastUnclean = end, end
	return p
}

// takeCrash returns the line that says how the previous run crashed, and
// when the runtime wrote it, from CrashFile, which it then moves to
// PreviousCrashFile. Both are zero when nothing crashed.
func takeCrash(dir string, log *slog.Logger) (string, time.Time) {
	path := filepath.Join(dir, CrashFile)
	head, mtime, err := readHead(path, maxCrashHead)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("lastrun: previous crash output unreadable", "err", err)
		}
		return "", time.Time{}
	}
	if len(head) == 0 {
		return "", time.Time{}
	}
	if err := os.Rename(path, filepath.Join(dir, PreviousCrashFile)); err != nil {
		log.Warn("lastrun: keep previous crash output", "err", err)
	}
	return crashLine(string(head)), mtime
}

// crashLine picks the line of crash output that says what happened: the
// first "panic: " or "fatal error: " line, else the first line before
// any stack trace ("SIGSEGV: segmentation violation"). A fatal error in
// the runtime (a stack overflow, concurrent map writes) prints its
// message before the crash output is switched on, so only its stack
// trace is there: then the line names the function it died in.
func crashLine(out string) string {
	var first, frame, runtimeFrame string
	inStack := false
	for line := range strings.Lines(out) {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "panic: ") || strings.HasPrefix(t, "fatal error: "):
			return detail(t)
		case t == "runtime stack:" || strings.HasPrefix(t, "goroutine ") && strings.HasSuffix(t, ":"):
			inStack = true
		case !inStack:
			if first == "" {
				first = t
			}
		case !strings.HasPrefix(line, "\t") && strings.HasSuffix(t, ")") && !strings.HasPrefix(t, "created by "):
			fn := t[:strings.LastIndexByte(t, '(')]
			if strings.HasPrefix(fn, "runtime.") {
				runtimeFrame = cmp.Or(runtimeFrame, fn)
			} else {
				frame = cmp.Or(frame, fn)
			}
		}
	}
	if first != "" || !inStack {
		return detail(first)
	}
	if fn := cmp.Or(frame, runtimeFrame); fn != "" {
		return detail("fatal error in " + fn + " (its message went to standard error only)")
	}
	return "fatal error (its message went to standard error only)"
}

// takeExitStatus returns the first line of ExitStatusFile and deletes
// it; "" when there is none.
func takeExitStatus(dir string, log *slog.Logger) string {
	path := filepath.Join(dir, ExitStatusFile)
	head, _, err := readHead(path, 4096)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("lastrun: exit status unreadable", "err", err)
		}
		return ""
	}
	if err := os.Remove(path); err != nil {
		log.Warn("lastrun: remove exit status", "err", err)
	}
	line, _, _ := strings.Cut(string(head), "\n")
	return detail(line)
}

// detail makes s a wire detail: one line of valid UTF-8 of at most
// wire.MaxAwayDetail bytes.
func detail(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= wire.MaxAwayDetail {
		return s
	}
	cut := wire.MaxAwayDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// startCrashOutput points the runtime's crash output at a fresh
// CrashFile. The runtime keeps its own copy of the descriptor.
func startCrashOutput(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, CrashFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return debug.SetCrashOutput(f, debug.CrashOptions{})
}
