package identity

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"
)

// TestOpenAccessListRefused: a file every user may read (win.ini, which
// Windows and Wine both leave readable to all) is refused as a key file,
// before it is read.
func TestOpenAccessListRefused(t *testing.T) {
	path := filepath.Join(os.Getenv("SystemRoot"), "win.ini")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no %s to check: %v", path, err)
	}
	err = checkPrivate(path, fi)
	if !errors.Is(err, ErrInsecureKey) {
		t.Fatalf("checkPrivate(%s) = %v, want ErrInsecureKey", path, err)
	}
	t.Log(err)
}

// TestTrustedSIDs: only SYSTEM, Administrators, OWNER RIGHTS and the
// process's own account may hold a key file; any other account may not,
// named or not.
func TestTrustedSIDs(t *testing.T) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	self := tu.User.Sid
	for typ, want := range map[windows.WELL_KNOWN_SID_TYPE]bool{
		windows.WinLocalSystemSid: true, windows.WinBuiltinAdministratorsSid: true, windows.WinCreatorOwnerRightsSid: true,
		windows.WinNetworkServiceSid: false, windows.WinBuiltinRemoteDesktopUsersSid: false, windows.WinWorldSid: false,
		windows.WinBuiltinUsersSid: false,
	} {
		sid, err := windows.CreateWellKnownSid(typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := trustedSID(sid, self); got != want {
			t.Errorf("trustedSID(%s) = %v, want %v", sid, got, want)
		}
	}
	if !trustedSID(self, self) {
		t.Error("the process's own account is not trusted")
	}
}
