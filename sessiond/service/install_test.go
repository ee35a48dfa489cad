package service

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestInstallReportsStateLeftBehind: when the enrolment fails and the
// state directory install made cannot be removed again, the error says so
// with the directory, besides the enrolment's error. A path ending in "."
// is one os.RemoveAll refuses (EINVAL) on every system, root or not.
func TestInstallReportsStateLeftBehind(t *testing.T) {
	p := windowsTestPlan(t)
	p.StateDir += string(filepath.Separator) + "."
	scm := &fakeSCM{registered: map[string]bool{}}
	var secured []string
	var enrolled int
	refused := errors.New("enroll: refused by the broker: token used up")
	err := install(context.Background(), windowsTest(scm, &secured, true), p, enrolIn(p.StateDir, &enrolled, refused), &strings.Builder{})
	want := "removing the state directory " + p.StateDir + " again failed too"
	if !errors.Is(err, refused) || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), want) {
		t.Errorf("install with a refused enrolment into a directory that stays: %v; want the enrolment's error and %q", err, want)
	}
	if enrolled != 1 {
		t.Errorf("enrolled %d times, want 1", enrolled)
	}
}
