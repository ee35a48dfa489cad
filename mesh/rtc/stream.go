package rtc

import (
	"io"
	"sync"
	"time"
)

// A data channel carries messages; SCTP refuses one larger than the
// peer's limit, and a reader must take a message whole. stream cuts writes
// into messages of at most writeChunk bytes and serves reads from a
// buffer that holds the largest message either side of this package sends.
const (
	// writeChunk is the message size stream writes. Larger messages mean
	// fewer per-message costs; past 64 KiB throughput stops improving
	// while each message holds more of the send window (see
	// BenchmarkBytesThroughput).
	writeChunk = 64 << 10
	// maxMessage is the largest message this package reads, on "bytes"
	// and "echo" alike.
	maxMessage = 64 << 10
)

// stream is the "bytes" channel as a byte stream: an io.ReadWriteCloser
// whose message boundaries mean nothing. One reader and one writer may use
// it at a time. It also has SetReadDeadline and SetWriteDeadline.
type stream struct {
	ch channel

	rmu  sync.Mutex // rmu guards rbuf, r and w: the read buffer
	rbuf []byte     // allocated on first use
	r, w int        // unread bytes are rbuf[r:w]

	wmu sync.Mutex // wmu guards no field: it keeps one Write's chunks together
}

var _ io.ReadWriteCloser = (*stream)(nil)

func newStream(ch channel) *stream { return &stream{ch: ch} }

func (s *stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.r == s.w {
		// A buffer that fits any message is read into directly.
		if len(p) >= maxMessage {
			return s.ch.Read(p)
		}
		if s.rbuf == nil {
			s.rbuf = make([]byte, maxMessage)
		}
		n, err := s.ch.Read(s.rbuf)
		if err != nil {
			return 0, err
		}
		s.r, s.w = 0, n
	}
	n := copy(p, s.rbuf[s.r:s.w])
	s.r += n
	return n, nil
}

func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	written := 0
	for written < len(p) {
		end := min(written+writeChunk, len(p))
		n, err := s.ch.Write(p[written:end])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// Close ends the stream in both directions. Bytes already written are
// delivered before the peer's reads return io.EOF.
func (s *stream) Close() error { return s.ch.Close() }

func (s *stream) SetReadDeadline(t time.Time) error  { return s.ch.SetReadDeadline(t) }
func (s *stream) SetWriteDeadline(t time.Time) error { return s.ch.SetWriteDeadline(t) }
