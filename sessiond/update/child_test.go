package update

import (
	"errors"
	"testing"
)

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("the handle is invalid") }

// TestTailWriterIgnoresDownstream: a downstream that fails (a Windows
// service's stderr) neither fails the child's writes nor loses the tail.
func TestTailWriterIgnoresDownstream(t *testing.T) {
	tw := &tailWriter{w: failingWriter{}}
	for _, s := range []string{"starting\n", "panic: the new ", "build is broken\n"} {
		if n, err := tw.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	if got := tw.last(); got != "panic: the new build is broken" {
		t.Errorf("last line %q", got)
	}
}
