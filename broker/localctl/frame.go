package localctl

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Frames of a stream: a 4-byte big-endian length, then that many bytes.
const (
	frameHeader = 4
	maxFrame    = 64 << 10
)

// maxHeader bounds a header or trailer line a client reads.
const maxHeader = 1 << 20

// header is the first line of a reply, and the trailer after a stream.
type header struct {
	// Stream says frames follow.
	Stream bool `json:"stream,omitempty"`
	// Body is the operation's result.
	Body json.RawMessage `json:"body,omitempty"`
	// Error is why the operation failed; nothing else is set then.
	Error string `json:"error,omitempty"`
}

// writeHeader writes h as one line.
func writeHeader(w io.Writer, h header) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// replyWriter writes a reply: a stream of frames if the handler writes to
// it (after the header announcing one), then the final header or trailer.
// Every write to the connection has its own deadline.
type replyWriter struct {
	c       net.Conn
	bw      *bufio.Writer
	timeout time.Duration
	started bool  // the stream's header is written
	err     error // the first write error; later writes fail with it
}

// Write sends p as frames, announcing the stream before the first.
func (w *replyWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.started {
		w.started = true
		w.deadline()
		if w.err = writeHeader(w.bw, header{Stream: true}); w.err != nil {
			return 0, w.err
		}
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		if w.err = w.frame(chunk); w.err != nil {
			return n, w.err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (w *replyWriter) frame(b []byte) error {
	w.deadline()
	var hdr [frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.bw.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.bw.Write(b)
	return err
}

func (w *replyWriter) deadline() { w.c.SetWriteDeadline(time.Now().Add(w.timeout)) }

// finish ends the reply with body or opErr: as its header if nothing was
// streamed, or as the trailer after the stream's end frame.
func (w *replyWriter) finish(body any, opErr error) error {
	if w.err != nil {
		return w.err
	}
	h := header{}
	if opErr != nil {
		h.Error = opErr.Error()
	} else if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			h.Error = fmt.Sprintf("encode the result: %v", err)
		}
		h.Body = raw
	}
	if w.started {
		if err := w.frame(nil); err != nil {
			return err
		}
	}
	w.deadline()
	if err := writeHeader(w.bw, h); err != nil {
		return err
	}
	return w.bw.Flush()
}

// readStream copies a stream's frames to out up to its end frame.
func readStream(r *bufio.Reader, out io.Writer) (int64, error) {
	var total int64
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return total, streamCut(err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			return total, nil
		}
		if n > maxFrame {
			return total, fmt.Errorf("frame of %d bytes, at most %d", n, maxFrame)
		}
		m, err := io.CopyN(out, r, int64(n))
		total += m
		if err != nil {
			if m < int64(n) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return total, streamCut(err)
			}
			return total, err
		}
	}
}

// streamCut is the error of a stream that ended before its end frame.
func streamCut(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("the stream ended before it was complete: %w", err)
}
