package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestChannelFrameRoundTrip writes frames small and large (the large ones
// take the two-write path) and reads them back in order.
func TestChannelFrameRoundTrip(t *testing.T) {
	frames := []struct {
		typ byte
		p   []byte
	}{
		{FrameHeader, []byte(`{"argv":["true"]}`)},
		{FrameInput, nil},
		{FrameOutput, bytes.Repeat([]byte("x"), 4097)},
		{FrameInput, bytes.Repeat([]byte{0}, MaxFrame)},
		{FrameExit, []byte{0, 0, 0, 1}},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteChannelFrame(&buf, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range frames {
		typ, p, err := ReadChannelFrame(&buf)
		if err != nil || typ != f.typ || !bytes.Equal(p, f.p) {
			t.Fatalf("frame %d: %q, %d bytes, %v; want %q, %d bytes", i, typ, len(p), err, f.typ, len(f.p))
		}
	}
	if _, _, err := ReadChannelFrame(&buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestChannelFrameLimits: a payload over MaxFrame is neither written nor
// read, and a frame cut short is malformed.
func TestChannelFrameLimits(t *testing.T) {
	if err := WriteChannelFrame(io.Discard, FrameOutput, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrame) {
		t.Errorf("write over MaxFrame: %v, want ErrFrame", err)
	}
	over := []byte{FrameOutput, 0, 0x10, 0, 1} // 1 MiB + 1
	if _, _, err := ReadChannelFrame(bytes.NewReader(over)); !errors.Is(err, ErrFrame) {
		t.Errorf("read over MaxFrame: %v, want ErrFrame", err)
	}
	short := []byte{FrameOutput, 0, 0, 0, 9, 'a'}
	if _, _, err := ReadChannelFrame(bytes.NewReader(short)); !errors.Is(err, ErrFrame) {
		t.Errorf("read of a cut frame: %v, want ErrFrame", err)
	}
}

// FuzzReadChannelFrame: whatever reads as a frame writes back to the same
// bytes, and reading never takes more than MaxFrame of payload.
func FuzzReadChannelFrame(f *testing.F) {
	var seed bytes.Buffer
	WriteChannelFrame(&seed, FrameHeader, []byte(`{"rows":24,"cols":80,"term":"xterm"}`))
	f.Add(seed.Bytes())
	f.Add([]byte{FrameResize, 0, 0, 0, 4, 0, 24, 0, 80})
	f.Add([]byte{FrameDone, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		typ, p, err := ReadChannelFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(p) > MaxFrame {
			t.Fatalf("read a %d-byte payload", len(p))
		}
		var out bytes.Buffer
		if err := WriteChannelFrame(&out, typ, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in[:5+len(p)]) {
			t.Fatalf("re-encoded %x, read from %x", out.Bytes(), in[:5+len(p)])
		}
	})
}

func TestValidShell(t *testing.T) {
	for _, ok := range []string{"", ShellPowerShell, ShellCmd, ShellSh} {
		if err := ValidShell(ok); err != nil {
			t.Errorf("ValidShell(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"bash", "PowerShell", "cmd.exe", "/bin/sh"} {
		if err := ValidShell(bad); err == nil {
			t.Errorf("ValidShell(%q) accepted", bad)
		}
	}
	r := ExecRequest{Argv: []string{"x"}, Shell: "zsh"}
	if r.Validate() == nil {
		t.Error("exec request with shell zsh validated")
	}
	q := QueueArgs{Machines: []string{"m"}, Script: "x", Mode: ModeInteractive, ExpiresSec: 60, Shell: "bash"}
	if q.Validate() == nil {
		t.Error("queue args with shell bash validated")
	}
}
