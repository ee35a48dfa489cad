package collect

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Load1 returns the machine's one-minute load average divided by its CPU
// count, read from /proc/loadavg below c.Root: 1.0 means every core busy.
// The CPU count is always the running process's (runtime.NumCPU).
func (c Config) Load1() (float64, error) {
	text, err := c.machine().readTrimmed("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("collect: load average: %w", err)
	}
	load, err := parseLoadavg(text)
	if err != nil {
		return 0, fmt.Errorf("collect: load average: %w", err)
	}
	return load / float64(runtime.NumCPU()), nil
}

// parseLoadavg reads the first field of /proc/loadavg
// ("0.18 0.11 0.04 1/83 4165").
func parseLoadavg(text string) (float64, error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return 0, errors.New("empty /proc/loadavg")
	}
	load, err := strconv.ParseFloat(f[0], 64)
	if err != nil || !(load >= 0 && load <= 1e6) { // also refuses NaN
		return 0, fmt.Errorf("bad one-minute load %q", f[0])
	}
	return load, nil
}
