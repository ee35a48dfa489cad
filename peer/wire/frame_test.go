package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// trapReader fails every read and remembers that one was tried. Put after a
// length prefix, it proves that the body was never read.
type trapReader struct{ reads int }

func (r *trapReader) Read([]byte) (int, error) {
	r.reads++
	return 0, errors.New("trap: the body was read")
}

// errReader returns its data, then err.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestWriteRead(t *testing.T) {
	var buf bytes.Buffer
	msgs := []Heartbeat{{Seq: 1, Load1: 0.5}, {Seq: 2, UserPresent: true, Users: []string{"alice"}}, {Seq: 3}}
	for i := range msgs {
		if err := Write(&buf, &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, want := range msgs {
		var got Heartbeat
		if err := r.Read(MaxControl, &got); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.Seq != want.Seq || got.Load1 != want.Load1 || got.UserPresent != want.UserPresent || len(got.Users) != len(want.Users) {
			t.Errorf("message %d: got %+v, want %+v", i, got, want)
		}
	}
	// The stream ends cleanly between messages: plain io.EOF, every time.
	for range 2 {
		var hb Heartbeat
		if err := r.Read(MaxControl, &hb); err != io.EOF {
			t.Errorf("at the end: got %v, want io.EOF", err)
		}
	}
}

func TestWriteFramesLength(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, &Login{Token: strings.Repeat("x", 300)}); err != nil {
		t.Fatal(err)
	}
	n, k := binary.Uvarint(buf.Bytes())
	if k <= 0 || int(n) != buf.Len()-k {
		t.Errorf("prefix says %d bytes, body is %d", n, buf.Len()-k)
	}
	if err := Write(&buf, func() {}); err == nil {
		t.Error("Write of an unencodable value succeeded")
	}
	werr := errors.New("disk on fire")
	if err := Write(&errReaderWriter{err: werr}, &Hello{MachineID: "m"}); !errors.Is(err, werr) {
		t.Errorf("write error: got %v, want it wrapped", err)
	}
}

type errReaderWriter struct{ err error }

func (w *errReaderWriter) Write([]byte) (int, error) { return 0, w.err }

func TestReadRawErrors(t *testing.T) {
	body := []byte(`{"seq":1}`)
	framed := append(binary.AppendUvarint(nil, uint64(len(body))), body...)
	tests := []struct {
		name string
		data []byte
		max  int
		want error // io.EOF, ErrMalformed or ErrTooLarge
	}{
		{"empty stream", nil, 100, io.EOF},
		{"inside the length prefix", []byte{0x80, 0x80}, 100, ErrMalformed},
		{"truncated body", framed[:len(framed)-1], 100, ErrMalformed},
		{"prefix only", framed[:1], 100, ErrMalformed},
		{"length prefix overflows", bytes.Repeat([]byte{0xff}, 10), 100, ErrMalformed},
		{"eleven-byte prefix", append(bytes.Repeat([]byte{0x80}, 10), 0), 100, ErrMalformed},
		{"over max", framed, len(body) - 1, ErrTooLarge},
		{"huge prefix", binary.AppendUvarint(nil, 1<<63), 100, ErrTooLarge},
		{"max is exact", framed, len(body), nil},
		{"zero-length body", []byte{0}, 100, nil},
		{"non-minimal prefix", append([]byte{0x89, 0x00}, body...), 100, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewReader(bytes.NewReader(tt.data)).ReadRaw(tt.max)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("got %v", err)
			case tt.want == io.EOF && err != io.EOF:
				t.Fatalf("got %v, want io.EOF itself", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("got %v, want %v", err, tt.want)
			case tt.want != nil && got != nil:
				t.Errorf("returned %d bytes with the error", len(got))
			case tt.want != io.EOF && tt.want != nil && errors.Is(err, io.EOF):
				t.Errorf("%v also matches io.EOF: a truncated message must not look like a clean end", err)
			}
		})
	}
}

// TestReadRawTooLargeUnread: an oversized message is refused after its
// length prefix; the body is neither read nor allocated.
func TestReadRawTooLargeUnread(t *testing.T) {
	for _, n := range []uint64{MaxControl + 1, 1 << 30, 1<<64 - 1} {
		trap := new(trapReader)
		r := NewReader(io.MultiReader(bytes.NewReader(binary.AppendUvarint(nil, n)), trap))
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := r.ReadRaw(MaxControl)
		runtime.ReadMemStats(&ms1)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("length %d: got %v, want ErrTooLarge", n, err)
		}
		if trap.reads != 0 {
			t.Errorf("length %d: the body was read after an oversized prefix", n)
		}
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 64<<10 {
			t.Errorf("length %d: refusing allocated %d bytes", n, alloc)
		}
	}
}

func TestReadRawIOErrors(t *testing.T) {
	boom := errors.New("connection reset by peer")
	for _, data := range [][]byte{nil, {0x85}, {0x05, 'a', 'b'}} {
		_, err := NewReader(&errReader{data: data, err: boom}).ReadRaw(100)
		if !errors.Is(err, boom) {
			t.Errorf("after %x: got %v, want the I/O error", data, err)
		}
		if errors.Is(err, ErrMalformed) || errors.Is(err, io.EOF) {
			t.Errorf("after %x: I/O error %v reported as malformed or EOF", data, err)
		}
	}
}

func TestReadDecodes(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"valid", `{"machine_id":"m1","agent_version":"1"}`, true},
		{"unknown fields are ignored", `{"machine_id":"m1","color":"blue"}`, true},
		{"fails Validate", `{"agent_version":"1"}`, false},
		{"not JSON", `hello`, false},
		{"trailing garbage", `{"machine_id":"m1"} {}`, false},
		{"wrong type", `{"machine_id":7}`, false},
		{"empty", ``, false},
		{"null", `null`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			framed := append(binary.AppendUvarint(nil, uint64(len(tt.body))), tt.body...)
			var h Hello
			err := NewReader(bytes.NewReader(framed)).Read(MaxControl, &h)
			if tt.ok != (err == nil) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("%v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "desk-01", "Desk_01.lan", "9", strings.Repeat("x", 64)} {
		if err := ValidName("name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "_a", "a b", "a/b", "ä", "a\x00", strings.Repeat("x", 65), "*"} {
		if err := ValidName("name", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestBodyGrowsWithData: a body announced large but cut short costs about
// what arrived, not what was announced.
func TestBodyGrowsWithData(t *testing.T) {
	const announced, sent = 16 << 20, 100 << 10
	data := append(binary.AppendUvarint(nil, announced), bytes.Repeat([]byte{' '}, sent)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := NewReader(bytes.NewReader(data)).ReadRaw(announced)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("cut-short body: %v, want ErrMalformed", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*sent {
		t.Errorf("reading %d of %d announced bytes allocated %d bytes, want at most %d", sent, announced, got, 4*sent)
	}
}

// TestBodyWhole: bodies across the chunk size come back whole.
func TestBodyWhole(t *testing.T) {
	for _, n := range []int{0, 1, bodyChunk - 1, bodyChunk, bodyChunk + 1, 5*bodyChunk + 7} {
		body := bytes.Repeat([]byte{'x'}, n)
		data := append(binary.AppendUvarint(nil, uint64(n)), body...)
		got, err := NewReader(bytes.NewReader(data)).ReadRaw(n)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%d-byte body: got %d bytes, %v", n, len(got), err)
		}
	}
}
