package channel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/peer/wire"
)

// The fuzz targets here read what a technician sends on a session channel
// as the agent's handlers do: the channel's header frame, and the data
// and closing frames of a file put. The frames themselves are fuzzed in
// peer/wire (FuzzReadChannelFrames).

func frames(f *testing.F, fr ...any) []byte {
	f.Helper()
	var b bytes.Buffer
	for i := 0; i < len(fr); i += 2 {
		p, ok := fr[i+1].([]byte)
		if !ok {
			var err error
			if p, err = json.Marshal(fr[i+1]); err != nil {
				f.Fatal(err)
			}
		}
		if err := wire.WriteChannelFrame(&b, fr[i].(byte), p); err != nil {
			f.Fatal(err)
		}
	}
	return b.Bytes()
}

// FuzzHeader reads a channel's first frame into each request type: what
// it accepts is a header frame whose JSON is a valid request.
func FuzzHeader(f *testing.F) {
	f.Add(frames(f, byte(wire.FrameHeader), wire.ExecRequest{Argv: []string{"journalctl", "-u", "nginx"}, Stdin: true}))
	f.Add(frames(f, byte(wire.FrameHeader), wire.TerminalRequest{Rows: 50, Cols: 132, Term: "xterm", AllowObservers: true}))
	f.Add(frames(f, byte(wire.FrameHeader), wire.FileRequest{Op: "put", Path: "/etc/motd", Size: 12, Mode: 0o644}))
	f.Add(frames(f, byte(wire.FrameInput), wire.ExecRequest{Argv: []string{"true"}}))
	f.Add(frames(f, byte(wire.FrameHeader), []byte(`{"argv":[]}`)))
	f.Add([]byte{wire.FrameHeader, 0, 0x10, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []interface{ Validate() error }{&wire.ExecRequest{}, &wire.TerminalRequest{}, &wire.FileRequest{}} {
			err := header(bytes.NewReader(data), v)
			if err != nil {
				if !errors.Is(err, wire.ErrFrame) && !errors.Is(err, wire.ErrMalformed) &&
					err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("%T: error %v is neither a bad frame nor a bad request", v, err)
				}
				continue
			}
			if len(data) < 5 || data[0] != wire.FrameHeader {
				t.Fatalf("%T: accepted %q as a header", v, data)
			}
			if err := v.Validate(); err != nil {
				t.Fatalf("%T: accepted an invalid request %+v: %v", v, v, err)
			}
		}
	})
}

// FuzzReceive runs a file put's receiving end on whatever frames a
// technician sends after the agent's file info. An oracle walks the frames
// and says what receive must do: write each input frame's bytes, never
// more than the announced size, and end with the closing checksum only
// when the size is reached. The file and the running hash always hold
// exactly the bytes written.
func FuzzReceive(f *testing.F) {
	sum := sha256.Sum256([]byte("hello, world"))
	hexSum := []byte(hex.EncodeToString(sum[:]))
	f.Add(frames(f, byte(wire.FrameInput), []byte("hello, "), byte(wire.FrameInput), []byte("world"), byte(wire.FrameDone), hexSum), uint32(12), uint32(0))
	f.Add(frames(f, byte(wire.FrameInput), []byte("world"), byte(wire.FrameDone), hexSum), uint32(12), uint32(7))
	f.Add(frames(f, byte(wire.FrameInput), []byte("hello, world!"), byte(wire.FrameDone), hexSum), uint32(12), uint32(0))
	f.Add(frames(f, byte(wire.FrameResize), []byte{0, 1, 0, 1}, byte(wire.FrameDone), hexSum[:63]), uint32(0), uint32(0))
	f.Add(frames(f, byte(wire.FrameInput), []byte("hel")), uint32(12), uint32(0))
	path := filepath.Join(testdir.New(f), "put.readymesh-partial")
	file, err := os.Create(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	f.Fuzz(func(t *testing.T, data []byte, size32, have32 uint32) {
		size := int64(size32 % (4 << 20))
		have := int64(have32) % (size + 1)
		if err := file.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		got, err := receive(bytes.NewReader(data), file, h, have, size)
		wantWritten, wantSum, ok := receiveOracle(data, have, size)
		written, rerr := os.ReadFile(path)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if ok != (err == nil) || (ok && got != wantSum) {
			t.Fatalf("receive = %q, %v; want ok %v, checksum %q", got, err, ok, wantSum)
		}
		if !bytes.Equal(written, wantWritten) || int64(len(written)) > size-have {
			t.Fatalf("wrote %d bytes, want %d (size %d, had %d)", len(written), len(wantWritten), size, have)
		}
		if ws := sha256.Sum256(written); !bytes.Equal(h.Sum(nil), ws[:]) {
			t.Fatal("the running hash is not the written bytes'")
		}
	})
}

// receiveOracle walks the frames of a put after have of size bytes: what
// receive must write, the checksum it must return and whether it
// succeeds.
func receiveOracle(data []byte, have, size int64) (written []byte, sum string, ok bool) {
	written = []byte{}
	n := have
	for len(data) >= 5 {
		typ, plen := data[0], binary.BigEndian.Uint32(data[1:5])
		if plen > wire.MaxFrame || int(plen) > len(data)-5 {
			return written, "", false
		}
		p := data[5 : 5+plen]
		data = data[5+plen:]
		switch typ {
		case wire.FrameInput:
			if n+int64(len(p)) > size {
				return written, "", false
			}
			written = append(written, p...)
			n += int64(len(p))
		case wire.FrameDone:
			if len(p) != 64 || n != size {
				return written, "", false
			}
			return written, string(p), true
		}
	}
	return written, "", false
}
