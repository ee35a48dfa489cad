package meshctl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/readymesh/readymesh/peer/wire"
)

// cpCmd copies a file to or from a machine: meshctl cp SRC DST, where one
// of them is MACHINE:/absolute/path. Both directions are checked end to
// end with SHA-256 and resume an interrupted copy when run again.
func (e *env) cpCmd(args []string) error {
	fs := flag.NewFlagSet("cp", flag.ContinueOnError)
	mode := fs.String("mode", "", "session `mode` (default: read-only to fetch, interactive to send)")
	transport := fs.String("transport", wire.TransportAuto, "auto, quic, relay")
	pos, err := parse(fs, args, "SRC", "DST")
	if err != nil {
		return err
	}
	src, dst := pos[0], pos[1]
	rm, rpath, get := remote(src)
	if !get {
		if rm, rpath, _ = remote(dst); rm == "" {
			return fmt.Errorf("%w: one of SRC and DST must be MACHINE:/path", ErrUsage)
		}
	} else if m2, _, _ := remote(dst); m2 != "" {
		return fmt.Errorf("%w: copy between two machines goes through this one: copy twice", ErrUsage)
	}
	if *mode == "" {
		*mode = wire.ModeInteractive
		if get {
			*mode = wire.ModeReadOnly
		}
	}
	s, _, err := e.openSession(rm, *mode, *transport)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Open(e.ctx, "files")
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	var n int64
	if get {
		n, err = e.fetch(st, rpath, dst)
	} else {
		n, err = e.send(st, src, rpath)
	}
	if err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Fprintf(e.out, "copied %s in %s (%.0f Mbit/s) over %s, sha256 verified\n", formatSize(n), d.Round(time.Millisecond),
		float64(n)*8/d.Seconds()/1e6, s.Path())
	return nil
}

// remote splits MACHINE:/path.
func remote(s string) (machine, path string, ok bool) {
	m, p, found := strings.Cut(s, ":")
	if !found || m == "" || !strings.HasPrefix(p, "/") {
		return "", "", false
	}
	return m, p, true
}

// fetch copies the agent's file to dst, resuming dst.readymesh-partial.
func (e *env) fetch(st io.ReadWriter, rpath, dst string) (int64, error) {
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, filepath.Base(rpath))
	}
	partial := dst + ".readymesh-partial"
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, _ := f.Stat()
	offset := fi.Size()
	hdr, _ := json.Marshal(wire.FileRequest{Op: "get", Path: rpath, Offset: offset})
	if err := wire.WriteChannelFrame(st, wire.FrameHeader, hdr); err != nil {
		return 0, err
	}
	var info wire.FileInfo
	if err := expectInfo(st, &info); err != nil {
		return 0, err
	}
	if offset > info.Size {
		offset = 0 // the remote file shrank: start over
		f.Truncate(0)
	}
	f.Seek(offset, io.SeekStart)
	bar := newProgress(info.Size, offset)
	n := offset
	for {
		typ, p, err := wire.ReadChannelFrame(st)
		if err != nil {
			return n, fmt.Errorf("copy interrupted at %d of %d bytes; run it again to resume: %w", n, info.Size, err)
		}
		switch typ {
		case wire.FrameOutput:
			if _, err := f.Write(p); err != nil {
				return n, err
			}
			n += int64(len(p))
			bar.set(n)
		case wire.FrameError:
			return n, frameErr(p)
		case wire.FrameExit:
			bar.done()
			f.Seek(0, io.SeekStart)
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return n, err
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 {
				os.Remove(partial)
				return n, fmt.Errorf("checksum mismatch: got %s, want %s; %s was not written", got, info.SHA256, dst)
			}
			f.Chmod(0o644)
			return n - offset, os.Rename(partial, dst)
		}
	}
}

// send copies src to the agent, resuming where the agent's partial copy
// ends.
func (e *env) send(st io.ReadWriter, src, rpath string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	hdr, _ := json.Marshal(wire.FileRequest{Op: "put", Path: rpath, Size: fi.Size(), Mode: uint32(fi.Mode().Perm())})
	if err := wire.WriteChannelFrame(st, wire.FrameHeader, hdr); err != nil {
		return 0, err
	}
	var info wire.FileInfo
	if err := expectInfo(st, &info); err != nil {
		return 0, err
	}
	// Hash the part the agent has, then each byte as it is sent.
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, info.Have)); err != nil {
		return 0, err
	}
	bar := newProgress(fi.Size(), info.Have)
	buf := make([]byte, 256<<10)
	n := info.Have
	for {
		k, rerr := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if err := wire.WriteChannelFrame(st, wire.FrameInput, buf[:k]); err != nil {
				return n, fmt.Errorf("copy interrupted at %d of %d bytes; run it again to resume: %w", n, fi.Size(), err)
			}
			n += int64(k)
			bar.set(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	if err := wire.WriteChannelFrame(st, wire.FrameDone, []byte(hex.EncodeToString(h.Sum(nil)))); err != nil {
		return n, err
	}
	for {
		typ, p, err := wire.ReadChannelFrame(st)
		if err != nil {
			return n, err
		}
		switch typ {
		case wire.FrameError:
			return n, frameErr(p)
		case wire.FrameExit:
			bar.done()
			return n - info.Have, nil
		}
	}
}

func expectInfo(r io.Reader, info *wire.FileInfo) error {
	typ, p, err := wire.ReadChannelFrame(r)
	if err != nil {
		return err
	}
	switch typ {
	case wire.FrameInfo:
		return json.Unmarshal(p, info)
	case wire.FrameError:
		return frameErr(p)
	}
	return errors.New("unexpected frame before the file's info")
}

func frameErr(p []byte) error {
	var we wire.Error
	json.Unmarshal(p, &we)
	return &we
}

// progress draws a progress bar on stderr when it is a terminal.
type progress struct {
	total, start int64
	began, last  time.Time
	on           bool
}

func newProgress(total, start int64) *progress {
	return &progress{total: total, start: start, began: time.Now(), on: term.IsTerminal(int(os.Stderr.Fd()))}
}

func (p *progress) set(n int64) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	frac := 1.0
	if p.total > 0 {
		frac = min(1, max(0, float64(n)/float64(p.total)))
	}
	width := 30
	fill := int(frac * float64(width))
	rate := float64(n-p.start) / max(time.Since(p.began).Seconds(), 1e-3)
	fmt.Fprintf(os.Stderr, "\r[%s%s] %5.1f%%  %s of %s  %s/s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		frac*100, formatSize(n), formatSize(p.total), formatSize(int64(rate)))
}

func (p *progress) done() {
	if p.on {
		p.last = time.Time{}
		p.set(p.total)
		fmt.Fprintln(os.Stderr)
	}
}
