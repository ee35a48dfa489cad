package channel

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

func newTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startTestConsole starts testShell on a terminal (a PTY, or a pseudo
// console on Windows), ended by endTestConsole when the test ends.
func startTestConsole(t *testing.T, s *Server) *console {
	t.Helper()
	argv, err := terminalShell(s.self, testShell)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.startConsole(s.self, argv, "xterm", 24, 80)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { endTestConsole(c) })
	return c
}

// TestResizeSize: a resize frame's rows and columns are kept within
// 1..1000, as the terminal header's are, whatever the technician sends.
func TestResizeSize(t *testing.T) {
	for _, tc := range []struct {
		p          []byte
		rows, cols uint16
		ok         bool
	}{
		{[]byte{0, 24, 0, 80}, 24, 80, true},
		{[]byte{0, 0, 0, 0}, 1, 1, true},
		{[]byte{0x03, 0xe8, 0x03, 0xe8}, 1000, 1000, true},
		{[]byte{0x03, 0xe9, 0, 80}, 1000, 80, true},
		{[]byte{0xff, 0xff, 0xff, 0xff}, 1000, 1000, true},
		{[]byte{0x80, 0x00, 0, 1}, 1000, 1, true}, // 32768: negative as an int16
		{[]byte{0, 24, 0}, 0, 0, false},
		{[]byte{0, 24, 0, 80, 0}, 0, 0, false},
	} {
		rows, cols, ok := resizeSize(tc.p)
		if rows != tc.rows || cols != tc.cols || ok != tc.ok {
			t.Errorf("resizeSize(%x) = %d, %d, %v; want %d, %d, %v", tc.p, rows, cols, ok, tc.rows, tc.cols, tc.ok)
		}
	}
}

// frameStream is a technician's side of a channel that has sent frames
// and then ends.
type frameStream struct{ io.Reader }

func (frameStream) Write(p []byte) (int, error) { return len(p), nil }
func (frameStream) Close() error                { return nil }

// TestReadFramesClampsResize runs the terminal's frame reader on a real
// terminal (a PTY, or a pseudo console on Windows) with resize frames
// past the limit: the terminal gets 1000 rows and columns at most, and
// at least 1.
func TestReadFramesClampsResize(t *testing.T) {
	s := newTestServer(t)
	for _, tc := range []struct {
		rows, cols         uint16
		wantRows, wantCols int
	}{
		{40, 120, 40, 120},
		{0xffff, 0xffff, 1000, 1000},
		{0, 2000, 1, 1000},
	} {
		c := startTestConsole(t, s)
		size := watchSize(t, c)
		var frames bytes.Buffer
		var p [4]byte
		binary.BigEndian.PutUint16(p[:], tc.rows)
		binary.BigEndian.PutUint16(p[2:], tc.cols)
		if err := wire.WriteChannelFrame(&frames, wire.FrameResize, p[:]); err != nil {
			t.Fatal(err)
		}
		tm := &term{s: s, con: c, log: slog.New(slog.DiscardHandler),
			ch: &mesh.Channel{Stream: frameStream{&frames}}}
		tm.readFrames()
		if rows, cols := size(); rows != tc.wantRows || cols != tc.wantCols {
			t.Errorf("resize to %d x %d: the terminal is %d x %d, want %d x %d",
				tc.rows, tc.cols, rows, cols, tc.wantRows, tc.wantCols)
		}
	}
}
