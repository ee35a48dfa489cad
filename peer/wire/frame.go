package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned when a message's length prefix exceeds the limit the
// reader set. The message body is not read.
var ErrTooLarge = errors.New("wire: message too large")

// ErrMalformed is returned (wrapped) when a message cannot be decoded.
var ErrMalformed = errors.New("wire: malformed message")

// Encode returns v as one framed message: its JSON encoding preceded by
// the length prefix.
func Encode(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	buf := make([]byte, 0, n+len(body))
	buf = append(buf, hdr[:n]...)
	return append(buf, body...), nil
}

// Write encodes v as JSON and writes it with its length prefix.
func Write(w io.Writer, v any) error {
	buf, err := Encode(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("wire: write %T: %w", v, err)
	}
	return nil
}

// Reader reads length-prefixed messages from a stream.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader over r with a 4 KiB buffer.
func NewReader(r io.Reader) *Reader {
	return NewReaderSize(r, 4096)
}

// NewReaderSize returns a Reader over r with a buffer of n bytes (at least
// 16). Messages larger than the buffer are still read whole; a small buffer
// suits a long-lived stream of small messages, such as heartbeats, where a
// broker holds one reader per agent.
func NewReaderSize(r io.Reader, n int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, n)}
}

// Buffered returns the bytes read from the stream past the last message,
// for a caller that switches the stream to another framing.
func (r *Reader) Buffered() []byte {
	b, _ := r.br.Peek(r.br.Buffered())
	return append([]byte(nil), b...)
}

// ReadRaw reads one message body of at most max bytes. It returns io.EOF
// when the stream ends cleanly between messages, an error wrapping
// ErrMalformed or ErrTooLarge for bad framing, and I/O errors (timeouts,
// resets) wrapped but otherwise as they came.
func (r *Reader) ReadRaw(max int) ([]byte, error) {
	n, err := r.Next(max)
	if err != nil {
		return nil, err
	}
	return r.Body(n)
}

// Next reads the next message's length prefix and returns the length, or
// ErrTooLarge (wrapped) if it exceeds max; the body is left unread. A
// server that accounts memory reserves the length between Next and Body.
func (r *Reader) Next(max int) (int, error) {
	n, err := r.readLen()
	if err != nil {
		return 0, err
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	return int(n), nil
}

// bodyChunk is the largest body allocated whole from its length prefix.
// A larger body grows its buffer as its bytes arrive, so a peer that
// announces megabytes and sends a trickle holds about what it sent, not
// what it announced.
const bodyChunk = 64 << 10

// Body reads a body of n bytes, as announced by Next.
func (r *Reader) Body(n int) ([]byte, error) {
	body := make([]byte, 0, min(n, bodyChunk))
	for len(body) < n {
		if len(body) == cap(body) {
			body = append(body, make([]byte, min(cap(body), n-len(body)))...)[:len(body)]
		}
		m, err := io.ReadFull(r.br, body[len(body):min(cap(body), n)])
		body = body[:len(body)+m]
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: stream ended after %d-byte length prefix, %d bytes into the body", ErrMalformed, n, len(body))
			}
			return nil, fmt.Errorf("wire: read body: %w", err)
		}
	}
	return body, nil
}

// readLen reads the unsigned varint length prefix.
func (r *Reader) readLen() (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.br.ReadByte()
		switch {
		case err == io.EOF && i == 0:
			return 0, io.EOF
		case err == io.EOF:
			return 0, fmt.Errorf("%w: stream ended inside the length prefix", ErrMalformed)
		case err != nil:
			return 0, fmt.Errorf("wire: read length: %w", err)
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return x | uint64(c)<<(7*i), nil
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, fmt.Errorf("%w: length prefix overflows 64 bits", ErrMalformed)
}

// Read reads one message of at most max bytes and decodes it into v. If v has
// a Validate method, it is called and its error returned.
func (r *Reader) Read(max int, v any) error {
	body, err := r.ReadRaw(max)
	if err != nil {
		return err
	}
	return Decode(body, v)
}

// Decode decodes a message body into v and validates it.
func Decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrMalformed, v, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%w: %T: %v", ErrMalformed, v, err)
		}
	}
	return nil
}
