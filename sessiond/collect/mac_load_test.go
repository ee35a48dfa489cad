package collect

import (
	"encoding/binary"
	"strings"
	"testing"
)

// vmLoadavg builds the raw value of sysctl vm.loadavg on 64-bit macOS.
func vmLoadavg(l1, l5, l15 uint32, scale int64) []byte {
	b := make([]byte, macLoadavgSize)
	binary.LittleEndian.PutUint32(b[0:], l1)
	binary.LittleEndian.PutUint32(b[4:], l5)
	binary.LittleEndian.PutUint32(b[8:], l15)
	binary.LittleEndian.PutUint32(b[12:], 0xdeadbeef) // padding: never read
	binary.LittleEndian.PutUint64(b[16:], uint64(scale))
	return b
}

func TestParseVMLoadavg(t *testing.T) {
	tests := []struct {
		name    string
		raw     []byte
		want    float64
		wantErr string
	}{
		{name: "busy", raw: vmLoadavg(3072, 2048, 1024, 2048), want: 1.5},
		{name: "idle", raw: vmLoadavg(0, 41, 99, 2048), want: 0},
		{name: "other scale", raw: vmLoadavg(250, 0, 0, 1000), want: 0.25},
		{name: "short", raw: vmLoadavg(1, 1, 1, 2048)[:16], wantErr: "16 bytes"},
		{name: "empty", raw: nil, wantErr: "0 bytes"},
		{name: "zero scale", raw: vmLoadavg(1, 1, 1, 0), wantErr: "scale 0"},
		{name: "negative scale", raw: vmLoadavg(1, 1, 1, -2048), wantErr: "scale -2048"},
		{name: "absurd", raw: vmLoadavg(4_000_000_000, 0, 0, 1), wantErr: "bad one-minute load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVMLoadavg(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
