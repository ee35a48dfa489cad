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

// openSIDs are groups whose access to a key file makes it readable by
// people other than its owner and the machine's administrators.
var openSIDs = []windows.WELL_KNOWN_SID_TYPE{
	windows.WinWorldSid, windows.WinAuthenticatedUserSid, windows.WinBuiltinUsersSid,
	windows.WinBuiltinGuestsSid, windows.WinAnonymousSid, windows.WinInteractiveSid,
}

// checkPrivate refuses a key file whose access list has no entries at all
// (everyone may do anything) or allows any of openSIDs in.
func checkPrivate(path string, _ os.FileInfo) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("identity: access list of %s: %w", path, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		return fmt.Errorf("%w: %s has no access list, so everyone may read it; delete it to make a new key, or "+
			"restrict it (icacls %s /inheritance:r /grant:r SYSTEM:F Administrators:F)", ErrInsecureKey, path, path)
	}
	for i := uint16(0); i < dacl.AceCount; i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, uint32(i), &ace); err != nil {
			return fmt.Errorf("identity: access list of %s: %w", path, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		for _, open := range openSIDs {
			if sid.IsWellKnown(open) {
				return fmt.Errorf("%w: %s may be opened by %s; it must be readable only by its owner "+
					"(icacls %s /inheritance:r /grant:r SYSTEM:F Administrators:F)", ErrInsecureKey, path, sidName(sid), path)
			}
		}
	}
	return nil
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
