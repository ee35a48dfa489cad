package ipc

// Run under Wine as ../../shared/TESTING.md describes:
//
//	WINEPREFIX=… WINEDEBUG=-all GOOS=windows go test -exec wine-stable ./sessiond/ipc/

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/internal/wintest"
)

// TestPipeSecurity: the pipe a client reaches is owned by the agent's
// account and admits that account, SYSTEM and Administrators only.
func TestPipeSecurity(t *testing.T) {
	dir := testdir.New(t)
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	name, _ := Address(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := openPipe(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(h)
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	self, err := processSID()
	if err != nil {
		t.Fatal(err)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner.String() != self {
		t.Errorf("pipe owner %v (%v), want this process's account %s", owner, err, self)
	}
	// Sorted and each once, as AllowedSIDs gives them: an agent running
	// as SYSTEM is SIDSystem itself.
	want := []string{SIDSystem, SIDAdmins, self}
	slices.Sort(want)
	want = slices.Compact(want)
	sids, protected := wintest.AllowedSIDs(t, sd)
	if !slices.Equal(sids, want) || !protected {
		t.Errorf("pipe DACL %s admits %v (protected %v), want exactly %v, protected", sd, sids, protected, want)
	}
}

// TestPipeNameTaken: while an agent holds its pipe, a second listener on
// the same state directory is refused.
func TestPipeNameTaken(t *testing.T) {
	dir := testdir.New(t)
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln2, err := Listen(dir)
	if err == nil {
		ln2.Close()
		if wintest.UnderWine() {
			t.Skip("Wine 8 ignores FILE_FLAG_FIRST_PIPE_INSTANCE: a second CreateNamedPipe of a held name succeeds, so squatting cannot be refused there")
		}
		t.Fatal("a second Listen on a state directory whose pipe is held succeeded")
	}
	if !strings.Contains(err.Error(), "another process holds this pipe") {
		t.Errorf("second Listen: %v, want it to say another process holds the pipe", err)
	}
}

// TestPipeForeignOwner: a pipe that another account created under the
// agent's name is refused before anything is sent to it.
func TestPipeForeignOwner(t *testing.T) {
	dir := testdir.New(t)
	name, _ := Address(dir)
	const users = "S-1-5-32-545" // BUILTIN\Users: neither SYSTEM, Administrators nor us
	l, err := newPipeListener(name, "O:"+users+"D:P(A;;GA;;;WD)")
	if err != nil {
		t.Skipf("cannot make a pipe owned by %s here (Windows needs SeRestorePrivilege for that): %v", users, err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, dir)
	if err == nil {
		c.Close()
		t.Fatal("Dial accepted a pipe owned by BUILTIN\\Users")
	}
	if !strings.Contains(err.Error(), "is owned by "+users) {
		t.Errorf("Dial: %v, want it to name the foreign owner", err)
	}
}
