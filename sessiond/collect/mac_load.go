package collect

import (
	"encoding/binary"
	"fmt"
)

// macLoadavgSize is the size of the kernel's struct loadavg on 64-bit
// macOS, as sysctl vm.loadavg returns it:
//
//	struct loadavg {
//		fixpt_t ldavg[3]; // uint32 each, offsets 0, 4, 8; 4 bytes padding
//		long    fscale;   // offset 16
//	};
const macLoadavgSize = 24

// parseVMLoadavg returns the one-minute load average from the raw value of
// sysctl vm.loadavg: ldavg[0] in fixed point, divided by fscale.
func parseVMLoadavg(b []byte) (float64, error) {
	if len(b) < macLoadavgSize {
		return 0, fmt.Errorf("vm.loadavg is %d bytes, want %d", len(b), macLoadavgSize)
	}
	ld := binary.LittleEndian.Uint32(b[0:])
	scale := int64(binary.LittleEndian.Uint64(b[16:]))
	if scale <= 0 {
		return 0, fmt.Errorf("vm.loadavg scale %d", scale)
	}
	load := float64(ld) / float64(scale)
	if load > 1e6 {
		return 0, fmt.Errorf("bad one-minute load %g", load)
	}
	return load, nil
}
