package lastrun

import (
	"strings"
	"testing"
	"time"
)

func TestParseBtime(t *testing.T) {
	stat := "cpu  1 2 3 4\nintr " + strings.Repeat("0 ", 70000) + "\nctxt 5\nbtime 1767225600\nprocesses 9\n"
	got, err := parseBtime(strings.NewReader(stat))
	if err != nil || !got.Equal(time.Unix(1767225600, 0)) {
		t.Errorf("parseBtime = %v, %v", got, err)
	}
	for _, bad := range []string{"cpu 1\n", "btime x\n", "btime -5\n"} {
		if got, err := parseBtime(strings.NewReader(bad)); err == nil {
			t.Errorf("parseBtime(%q) = %v, want an error", bad, got)
		}
	}
	boot, err := BootTime()
	if err != nil || boot.IsZero() || boot.After(time.Now()) {
		t.Errorf("BootTime = %v, %v", boot, err)
	}
}
