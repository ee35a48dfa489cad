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

// TestAccessEntryTypes: a key file's access list may deny anyone
// anything, and allow only trusted accounts with plain allow entries.
// Any other entry type that allows (object and callback allows, unknown
// types) is refused, whoever it names: its SID is not where a plain
// entry's is, or its condition is not evaluated here.
//
// Wine's SDDL parser knows only plain entries (it refuses XA and OA), so
// each case makes a plain entry for its account and sets its type.
func TestAccessEntryTypes(t *testing.T) {
	for _, tc := range []struct {
		sid  string // the second entry's account; the first allows SYSTEM
		typ  uint8
		want bool // accepted
	}{
		{"SY", 0, true},  // ACCESS_ALLOWED
		{"WD", 0, false}, // ACCESS_ALLOWED to Everyone
		{"WD", 1, true},  // ACCESS_DENIED
		{"WD", 6, true},  // ACCESS_DENIED_OBJECT
		{"WD", 10, true}, // ACCESS_DENIED_CALLBACK
		{"WD", 12, true}, // ACCESS_DENIED_CALLBACK_OBJECT
		{"WD", 5, false}, // ACCESS_ALLOWED_OBJECT
		{"WD", 9, false}, // ACCESS_ALLOWED_CALLBACK
		{"WD", 11, false},
		{"SY", 9, false}, // a callback allow is refused even for a trusted account
		{"WD", 4, false}, // ACCESS_ALLOWED_COMPOUND
		{"WD", 2, false}, // SYSTEM_AUDIT: has no place in an access list
		{"WD", 21, false},
	} {
		sd, err := windows.SecurityDescriptorFromString("O:SYD:P(A;;FA;;;SY)(A;;FA;;;" + tc.sid + ")")
		if err != nil {
			t.Fatal(err)
		}
		dacl, _, err := sd.DACL()
		if err != nil {
			t.Fatal(err)
		}
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, 1, &ace); err != nil {
			t.Fatal(err)
		}
		ace.Header.AceType = tc.typ
		err = checkDescriptor(`C:\key`, sd, nil)
		if got := err == nil; got != tc.want {
			t.Errorf("entry of type %d for %s: checkDescriptor = %v, want accepted %v", tc.typ, tc.sid, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrInsecureKey) {
			t.Errorf("entry of type %d for %s: %v, want ErrInsecureKey", tc.typ, tc.sid, err)
		}
	}
}
