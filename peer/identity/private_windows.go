package identity

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// privateSDDL is the key file's access: full control for SYSTEM, the
// Administrators group and the file's owner, inherited from nothing (P).
// File modes mean nothing on Windows, where a new file takes its
// directory's inheritable entries, which often admit all Users.
const privateSDDL = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)"

// makePrivate gives the key file privateSDDL's access list.
func makePrivate(path string) error {
	sd, err := windows.SecurityDescriptorFromString(privateSDDL)
	if err != nil {
		return fmt.Errorf("key file access list: %w", err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("key file access list: %w", err)
	}
	err = windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("restrict %s to its owner: %w", path, err)
	}
	return nil
}

// trustedSID reports whether sid may hold a key file: SYSTEM, the
// Administrators group, the account this process runs as, or OWNER
// RIGHTS (the file's owner, itself checked).
func trustedSID(sid, self *windows.SID) bool {
	return sid.IsWellKnown(windows.WinLocalSystemSid) || sid.IsWellKnown(windows.WinBuiltinAdministratorsSid) ||
		sid.IsWellKnown(windows.WinCreatorOwnerRightsSid) || (self != nil && sid.Equals(self))
}

// checkPrivate refuses a key file that anyone but trusted accounts
// (trustedSID) may open, whose access list is missing (everyone may do
// anything), or whose owner is not one of them: another user could have
// planted it, and as its owner could give itself access again.
func checkPrivate(path string, _ os.FileInfo) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("identity: access list of %s: %w", path, err)
	}
	var self *windows.SID
	if tu, err := windows.GetCurrentProcessToken().GetTokenUser(); err == nil {
		self = tu.User.Sid
	}
	return checkDescriptor(path, sd, self)
}

// checkDescriptor is checkPrivate on the file's security descriptor sd;
// self is the account this process runs as, or nil.
func checkDescriptor(path string, sd *windows.SECURITY_DESCRIPTOR, self *windows.SID) error {
	fix := fmt.Sprintf("delete it to make a new key, or restrict it (icacls %s /setowner Administrators "+
		"/inheritance:r /grant:r SYSTEM:F Administrators:F)", path)
	if owner, _, err := sd.Owner(); err != nil || owner == nil || !trustedSID(owner, self) {
		name := "nobody"
		if owner != nil {
			name = sidName(owner)
		}
		return fmt.Errorf("%w: %s is owned by %s; %s", ErrInsecureKey, path, name, fix)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		return fmt.Errorf("%w: %s has no access list, so everyone may read it; %s", ErrInsecureKey, path, fix)
	}
	for i := uint16(0); i < dacl.AceCount; i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, uint32(i), &ace); err != nil {
			return fmt.Errorf("identity: access list of %s: %w", path, err)
		}
		switch typ := ace.Header.AceType; {
		case denyACE(typ):
			continue
		case typ != windows.ACCESS_ALLOWED_ACE_TYPE:
			return fmt.Errorf("%w: %s has an access entry of type %d, which may let others open it and is not checked here; %s",
				ErrInsecureKey, path, typ, fix)
		}
		if sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart)); !trustedSID(sid, self) {
			return fmt.Errorf("%w: %s may be opened by %s; it must be readable only by its owner; %s",
				ErrInsecureKey, path, sidName(sid), fix)
		}
	}
	return nil
}

// The access-denied entry types of winnt.h besides ACCESS_DENIED_ACE_TYPE.
const (
	accessDeniedObjectACE         = 6  // ACCESS_DENIED_OBJECT_ACE_TYPE
	accessDeniedCallbackACE       = 10 // ACCESS_DENIED_CALLBACK_ACE_TYPE
	accessDeniedCallbackObjectACE = 12 // ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE
)

// denyACE reports whether an access list entry of type typ only takes
// access away: a key file's list may hold any of those. Every other type
// (the object and callback allows, and types this code does not know)
// may give access, so checkDescriptor refuses it rather than guess whom.
func denyACE(typ uint8) bool {
	switch typ {
	case windows.ACCESS_DENIED_ACE_TYPE, accessDeniedObjectACE, accessDeniedCallbackACE, accessDeniedCallbackObjectACE:
		return true
	}
	return false
}

func sidName(sid *windows.SID) string {
	if name, domain, _, err := sid.LookupAccount(""); err == nil {
		if domain != "" {
			return domain + `\` + name
		}
		return name
	}
	return sid.String()
}

// readKey reads the key file, trying again for a moment while another
// process holds it without sharing: a second agent or meshctl creating it
// at the same time, or a virus scanner looking at the new file, which on
// Windows is common.
func readKey(path string) ([]byte, error) {
	for try := 0; ; try++ {
		raw, err := os.ReadFile(path)
		if err == nil || try == 20 || !errors.Is(err, windows.ERROR_SHARING_VIOLATION) {
			return raw, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}
