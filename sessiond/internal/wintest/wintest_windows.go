package wintest

import (
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"
)

// UnderWine reports whether the program runs under Wine, whose ntdll
// exports wine_get_version.
func UnderWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// AllowedSIDs returns the SIDs (as strings, sorted, each once) that the
// access list of sd grants access to, and whether that list is protected
// from inheritance. It fails the test on an entry that is not a plain
// allow: the descriptors the tests check have none.
func AllowedSIDs(t testing.TB, sd *windows.SECURITY_DESCRIPTOR) (sids []string, protected bool) {
	t.Helper()
	acl, _, err := sd.DACL()
	if err != nil {
		t.Fatalf("DACL of %s: %v", sd, err)
	}
	if acl == nil {
		t.Fatalf("%s has a null DACL: it admits everyone", sd)
	}
	for i := range uint32(acl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(acl, i, &ace); err != nil {
			t.Fatalf("entry %d of %s: %v", i, sd, err)
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			t.Fatalf("entry %d of %s is of type %d, not an allow", i, sd, ace.Header.AceType)
		}
		sids = append(sids, (*windows.SID)(unsafe.Pointer(&ace.SidStart)).String())
	}
	control, _, err := sd.Control()
	if err != nil {
		t.Fatalf("control bits of %s: %v", sd, err)
	}
	slices.Sort(sids)
	return slices.Compact(sids), control&windows.SE_DACL_PROTECTED != 0
}
