package lastrun

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// BootTime returns when the machine booted: the btime line of /proc/stat,
// to the second. Suspend does not move it.
func BootTime() (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	defer f.Close()
	return parseBtime(f)
}

// parseBtime finds the btime line of /proc/stat's text.
func parseBtime(f io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // the intr line is long
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "btime ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || sec <= 0 {
			return time.Time{}, fmt.Errorf("boot time: bad btime %q", v)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	return time.Time{}, errors.New("boot time: no btime in /proc/stat")
}
