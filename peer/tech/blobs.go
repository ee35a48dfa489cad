package tech

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Release binaries travel to the broker as blobs over wire.ProtoRelease:
// a has asks how much of a blob the broker holds, a put sends the rest.
// The broker commits each 1 MiB chunk as it arrives, so an upload cut
// off anywhere resumes at what the broker holds.

// blobIdle bounds each write of an upload, and the wait for the broker's
// answer once the bytes are sent (it commits the last chunk and checks
// the whole blob's SHA-256 first).
const blobIdle = 30 * time.Second

// uploadAttempts is how many times UploadBlob starts a put, resuming
// each time at what the broker holds.
const uploadAttempts = 3

// BlobHas returns how many bytes of blob sha (size bytes in all) the
// broker holds, from the start.
func (c *Client) BlobHas(ctx context.Context, sha string, size int64) (int64, error) {
	var rep wire.BlobReply
	req := wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobHas, SHA256: sha, Size: size}
	if err := bridge.Call(ctx, c.host, c.broker.ID, wire.ProtoRelease, &req, &rep, wire.MaxControl); err != nil {
		return 0, fmt.Errorf("release blob %s: %w", short(sha), err)
	}
	if rep.Error != nil {
		return 0, fmt.Errorf("release blob %s: %w", short(sha), rep.Error)
	}
	return rep.Have, nil
}

// UploadBlob makes the broker hold blob sha whole: size bytes read from
// r, which must hash to sha. It asks what the broker holds and sends the
// rest, resuming after a cut-off up to uploadAttempts times. It returns
// how many bytes it sent (zero when the broker held the blob already).
// A refusal (not an admin, bytes that do not hash to sha) ends it at
// once, except a conflict: an earlier upload of this technician still
// ending on the broker, or bytes it committed after the has. Those pass
// once the broker notices, so the put is tried again after a pause
// (conflictPause, doubling).
func (c *Client) UploadBlob(ctx context.Context, sha string, size int64, r io.ReaderAt) (int64, error) {
	var sent int64
	var last error
	for i := range uploadAttempts {
		if i > 0 && !pause(ctx, last, i) {
			break
		}
		have, err := c.BlobHas(ctx, sha, size)
		if err != nil {
			return sent, err
		}
		if have == size {
			return sent, nil
		}
		n, err := c.put(ctx, sha, size, have, r)
		sent += n
		var refused *wire.Error
		var local *localError
		switch {
		case err == nil:
			return sent, nil
		case errors.As(err, &refused) && refused.Code != wire.CodeConflict,
			errors.As(err, &local), ctx.Err() != nil:
			return sent, fmt.Errorf("release blob %s: %w", short(sha), err)
		}
		last = err
	}
	return sent, fmt.Errorf("release blob %s: %d attempts failed, the last: %w", short(sha), uploadAttempts, last)
}

// conflictPause is the first pause before a put refused with a conflict
// is tried again; it doubles with each attempt.
const conflictPause = 500 * time.Millisecond

// pause waits before attempt i (from 1) when the last failure was a
// conflict, and reports whether ctx is still live.
func pause(ctx context.Context, last error, i int) bool {
	var refused *wire.Error
	if !errors.As(last, &refused) || refused.Code != wire.CodeConflict {
		return ctx.Err() == nil
	}
	t := time.NewTimer(conflictPause << (i - 1))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// put sends the bytes of the blob from offset to its end and reads the
// broker's answer. A refusal comes back as a *wire.Error.
func (c *Client) put(ctx context.Context, sha string, size, offset int64, r io.ReaderAt) (int64, error) {
	s, err := c.host.NewStream(ctx, c.broker.ID, wire.ProtoRelease)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", wire.ProtoRelease, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	req := wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobPut, SHA256: sha, Size: size, Offset: offset}
	// The bytes are written on a goroutine while the reply is read: the
	// broker may refuse from the request alone, and then its answer is
	// what counts, not the write it cut off.
	type result struct {
		n   int64
		err error
	}
	written := make(chan result, 1)
	go func() {
		s.SetWriteDeadline(time.Now().Add(blobIdle))
		err := wire.Write(s, &req)
		var n int64
		src := &sourceReader{r: io.NewSectionReader(r, offset, size-offset)}
		if err == nil {
			n, err = io.Copy(idleWriter{s}, src)
		}
		if src.err != nil {
			// The file failed, not the broker: end the bytes there (the
			// broker keeps the whole chunks it got, and says where it
			// stopped) and do not retry.
			s.CloseWrite()
			s.SetReadDeadline(time.Now().Add(blobIdle))
			written <- result{n, &localError{src.err}}
			return
		}
		if err == nil {
			s.CloseWrite()
			// The broker answers once it has committed the last chunk.
			s.SetReadDeadline(time.Now().Add(blobIdle))
		} else {
			// A refusal the broker sent before it stopped reading is
			// still read; a broker that stalled is given up on.
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
		}
		written <- result{n, err}
	}()
	var rep wire.BlobReply
	rerr := wire.NewReader(s).Read(wire.MaxControl, &rep)
	var w result
	select {
	case w = <-written:
	default: // answered before reading it all: a refusal, or the blob is whole
		s.Reset()
		w = <-written
	}
	var local *localError
	switch {
	case errors.As(w.err, &local):
		return w.n, w.err
	case rerr != nil:
		s.Reset()
		if w.err != nil {
			return w.n, fmt.Errorf("upload: %w (reading the answer: %v)", w.err, rerr)
		}
		return w.n, fmt.Errorf("upload: reading the answer: %w", rerr)
	case rep.Error != nil:
		s.Reset()
		return w.n, rep.Error
	case rep.Have != size:
		s.Reset()
		return w.n, fmt.Errorf("upload: the broker holds %d of %d bytes after it", rep.Have, size)
	}
	s.Close()
	return w.n, nil
}

// sourceReader notes the error of the blob's source, to tell it from the
// stream's.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// localError is a failure to read the blob being uploaded.
type localError struct{ err error }

func (e *localError) Error() string { return "reading the blob to upload: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// idleWriter writes to a stream, each write within blobIdle.
type idleWriter struct{ s network.Stream }

func (w idleWriter) Write(p []byte) (int, error) {
	w.s.SetWriteDeadline(time.Now().Add(blobIdle))
	return w.s.Write(p)
}

// short is a blob's name as logs and errors show it.
func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
