package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/wire"
)

// Fetcher downloads release binaries over the bridge (wire.ProtoRelease,
// op get) into the update directory, resuming from what an earlier
// attempt kept.
type Fetcher struct {
	// Host is the agent's bridge host. It must not be nil.
	Host host.Host
	// Broker returns the broker to ask: the one holding the bridge now,
	// waiting for the bridge if it is down. It must not be nil. A broker
	// that lacks the blob pulls it from another one while it serves.
	Broker func(context.Context) (peer.ID, error)
	// Dir is where downloads are kept (SHA256.part). It must not be
	// empty.
	Dir string
	// ChunkTimeout bounds the wait for the next bytes; a stalled stream
	// is dropped and the download resumed on a new one. Zero means 60 s.
	ChunkTimeout time.Duration
	// ReplyTimeout bounds the wait for the broker's reply, which comes
	// only once the download has a slot (a busy broker queues downloads
	// for up to a minute) and, on a broker that lacks the blob, once
	// another broker has been found to pull it from (up to 30 s). Zero
	// means 2 minutes.
	ReplyTimeout time.Duration
	// Tries bounds the attempts in a row that bring no new bytes. Zero
	// means 5.
	Tries int
	// Logger receives progress and retries. Nil means discard.
	Logger *slog.Logger
}

// errPermanent marks a broker's refusal that another attempt will not
// change (the release was withdrawn, the agent is not allowed).
type errPermanent struct{ err error }

func (e *errPermanent) Error() string { return e.err.Error() }
func (e *errPermanent) Unwrap() error { return e.err }

// Fetch downloads bin and returns the path of a file holding exactly
// bin.Size bytes whose SHA-256 is bin.SHA256. It writes at most bin.Size
// bytes, whatever a broker sends. A file whose hash does not match is
// deleted: the next Fetch starts over.
func (f *Fetcher) Fetch(ctx context.Context, bin wire.ReleaseBinary) (string, error) {
	if !validSHA(bin.SHA256) || bin.Size <= 0 || bin.Size > wire.MaxBlob {
		return "", fmt.Errorf("download: the manifest names a bad blob (sha256 %q, %d bytes)", bin.SHA256, bin.Size)
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	part := filepath.Join(f.Dir, bin.SHA256+".part")
	dropOtherParts(f.Dir, part)
	if err := f.fill(ctx, part, bin); err != nil {
		return "", err
	}
	if err := checkFile(part, bin); err != nil {
		os.Remove(part)
		return "", fmt.Errorf("download: %w; the download is discarded", err)
	}
	return part, nil
}

// dropOtherParts deletes the downloads in dir other than part: only one
// update is installed at a time, so they are left from releases no
// longer wanted.
func dropOtherParts(dir, part string) {
	old, _ := filepath.Glob(filepath.Join(dir, "*.part"))
	for _, p := range old {
		if p != part {
			os.Remove(p)
		}
	}
}

// fill brings part to bin.Size bytes, one stream per attempt.
func (f *Fetcher) fill(ctx context.Context, part string, bin wire.ReleaseBinary) error {
	tries := f.Tries
	if tries <= 0 {
		tries = 5
	}
	var last error
	for fails := 0; fails < tries; {
		have, err := partSize(part, bin.Size)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		if have == bin.Size {
			return nil
		}
		got, err := f.attempt(ctx, part, bin, have)
		var perm *errPermanent
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("download: %w", ctx.Err())
		case errors.As(err, &perm):
			return fmt.Errorf("download: %w", err)
		case got > 0:
			fails = 0
			continue
		}
		fails++
		last = err
		f.log().Warn("release download: no progress; trying again", "sha256", bin.SHA256[:12], "have", have, "err", err, "failures", fails)
		if err := sleep(ctx, time.Duration(fails)*time.Second); err != nil {
			return fmt.Errorf("download: %w", err)
		}
	}
	return fmt.Errorf("download: %d attempts in a row brought nothing: %w", tries, last)
}

// attempt asks the broker for the blob from have on and appends what
// arrives to part, at most up to bin.Size. It returns how many bytes it
// added and why it stopped (nil once the blob is whole).
func (f *Fetcher) attempt(ctx context.Context, part string, bin wire.ReleaseBinary, have int64) (int64, error) {
	broker, err := f.Broker(ctx)
	if err != nil {
		return 0, fmt.Errorf("no broker: %w", err)
	}
	body, closeStream, err := f.open(ctx, broker, bin, have)
	if err != nil {
		return 0, err
	}
	defer closeStream()
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(out, io.LimitReader(body, bin.Size-have))
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if err == nil && have+n < bin.Size {
		err = fmt.Errorf("broker %s ended the stream at %d of %d bytes", broker, have+n, bin.Size)
	}
	return n, err
}

// open opens a get stream at offset and reads the broker's reply. The
// returned reader yields the blob's bytes, each read bounded by
// ChunkTimeout.
func (f *Fetcher) open(ctx context.Context, broker peer.ID, bin wire.ReleaseBinary, offset int64) (io.Reader, func(), error) {
	timeout := f.chunkTimeout()
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := f.Host.NewStream(octx, broker, wire.ProtoRelease)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s to %s: %w", wire.ProtoRelease, broker, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	closeStream := func() { stop(); s.Close() }
	s.SetDeadline(time.Now().Add(f.replyTimeout()))
	req := wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobGet, SHA256: bin.SHA256, Size: bin.Size, Offset: offset}
	var rep wire.BlobReply
	r := wire.NewReader(s)
	if err := wire.Write(s, &req); err != nil {
		closeStream()
		return nil, nil, err
	}
	if err := r.Read(wire.MaxControl, &rep); err != nil {
		closeStream()
		return nil, nil, fmt.Errorf("broker %s: reply: %w", broker, err)
	}
	if rep.Error != nil {
		closeStream()
		return nil, nil, blobRefusal(broker, rep.Error)
	}
	s.SetDeadline(time.Time{})
	body := io.MultiReader(bytes.NewReader(r.Buffered()), &deadlineReader{s: s, every: timeout})
	return body, closeStream, nil
}

// blobRefusal turns a broker's refusal into an error; one that says the
// agent may not have the blob, or that it is gone, ends the download.
func blobRefusal(broker peer.ID, e *wire.Error) error {
	err := fmt.Errorf("broker %s refused the download: %w", broker, e)
	switch e.Code {
	case wire.CodeForbidden, wire.CodeGone, wire.CodeRemoved, wire.CodeBadRequest, wire.CodeVersion:
		return &errPermanent{err}
	}
	return err
}

// deadlineReader sets a read deadline before each read, so a stream that
// stalls fails after every, not after the whole download's time.
type deadlineReader struct {
	s interface {
		io.Reader
		SetReadDeadline(time.Time) error
	}
	every time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.s.SetReadDeadline(time.Now().Add(d.every))
	return d.s.Read(p)
}

func (f *Fetcher) replyTimeout() time.Duration {
	if f.ReplyTimeout <= 0 {
		return 2 * time.Minute
	}
	return f.ReplyTimeout
}

func (f *Fetcher) chunkTimeout() time.Duration {
	if f.ChunkTimeout <= 0 {
		return 60 * time.Second
	}
	return f.ChunkTimeout
}

func (f *Fetcher) log() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// partSize returns how much of the blob part holds; a file longer than
// the blob cannot be one and is deleted.
func partSize(part string, size int64) (int64, error) {
	st, err := os.Stat(part)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, err
	case st.Size() > size:
		return 0, os.Remove(part)
	}
	return st.Size(), nil
}

// checkFile checks that the file at path is bin: its size and SHA-256.
func checkFile(path string, bin wire.ReleaseBinary) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, bin.Size+1))
	if err != nil {
		return err
	}
	if n != bin.Size {
		return fmt.Errorf("%s holds %d bytes, the manifest says %d", filepath.Base(path), n, bin.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != bin.SHA256 {
		return fmt.Errorf("SHA-256 mismatch: got %s, the manifest says %s", got, bin.SHA256)
	}
	return nil
}

// validSHA reports whether s is 64 lower-case hex digits.
func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
