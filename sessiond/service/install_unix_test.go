//go:build !windows

package service

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/service/installtest"
)

// planUnder plans for goos with a new temporary directory as the root of
// the test's system: the source binary at root/src (slash-separated),
// holding "#!binary", and the state directory root/state. The test moves
// the plan's other places under root.
func planUnder(t *testing.T, goos, src string) (root string, p *Plan) {
	t.Helper()
	root = testdir.New(t)
	src = filepath.Join(root, filepath.FromSlash(src))
	os.MkdirAll(filepath.Dir(src), 0o755)
	if err := os.WriteFile(src, []byte("#!binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(Spec{OS: goos, StateDir: filepath.Join(root, "state"), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return root, p
}

// checkReinstallUninstall checks, after a first install of p on sys, what
// follows on every system: a second install is refused before it enrols
// (its error holding already); uninstall without --purge makes the calls
// want of the service manager (calls, which it empties first), removes
// gone and keeps the agent's key; and a second uninstall says sessiond
// is not installed.
func checkReinstallUninstall(t *testing.T, sys system, p *Plan, enrolled *int, already string, calls *[]string, want []string, gone ...string) {
	t.Helper()
	var out strings.Builder
	before := *enrolled
	err := install(context.Background(), sys, p, enrolIn(p.StateDir, enrolled, nil), &out)
	if err == nil || !strings.Contains(err.Error(), already) || *enrolled != before {
		t.Errorf("second install: %v (enrolled %d times); want it refused before enrolling", err, *enrolled)
	}

	*calls = nil
	if err := uninstall(sys, p, false, &out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*calls, want) {
		t.Errorf("uninstall's calls\n%q\nwant\n%q", *calls, want)
	}
	installtest.Gone(t, "uninstall", gone...)
	installtest.Kept(t, "uninstall without --purge", filepath.Join(p.StateDir, "agent.key"))
	if err := uninstall(sys, p, false, &out); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("uninstall of nothing: %v, want it to say sessiond is not installed", err)
	}
}
