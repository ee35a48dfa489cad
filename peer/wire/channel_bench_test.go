package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
)

// readWholeFrame is the baseline ReadChannelFrame is measured against: the
// payload allocated whole from its length field, as it was before
// payloads grew as they arrived.
func readWholeFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}

// BenchmarkReadChannelFrame reads frames of the sizes the agent sees:
// 32 KiB (its own output chunks), 256 KiB (meshctl cp's put) and MaxFrame.
// "whole" is the baseline; "grown" is ReadChannelFrame.
func BenchmarkReadChannelFrame(b *testing.B) {
	for _, size := range []int{32 << 10, 256 << 10, MaxFrame} {
		var frame bytes.Buffer
		WriteChannelFrame(&frame, FrameInput, bytes.Repeat([]byte{'x'}, size))
		for _, read := range []struct {
			name string
			fn   func(io.Reader) (byte, []byte, error)
		}{{"whole", readWholeFrame}, {"grown", ReadChannelFrame}} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, read.name), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				r := bytes.NewReader(frame.Bytes())
				for b.Loop() {
					r.Reset(frame.Bytes())
					if _, p, err := read.fn(r); err != nil || len(p) != size {
						b.Fatalf("%d bytes, %v", len(p), err)
					}
				}
			})
		}
	}
}
