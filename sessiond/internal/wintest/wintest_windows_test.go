package wintest

import (
	"slices"
	"testing"

	"golang.org/x/sys/windows"
)

// TestAllowedSIDs: the accounts come back sorted, each once, with the
// protection bit; the same account twice (as when the agent runs as
// SYSTEM and admits SYSTEM and itself) is one entry.
func TestAllowedSIDs(t *testing.T) {
	for _, tc := range []struct {
		sddl      string
		want      []string
		protected bool
	}{
		{"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;SY)", []string{"S-1-5-18", "S-1-5-32-544"}, true},
		{"D:(A;;GA;;;BA)(A;;GR;;;WD)", []string{"S-1-1-0", "S-1-5-32-544"}, false},
		{"D:P", nil, true},
	} {
		sd, err := windows.SecurityDescriptorFromString(tc.sddl)
		if err != nil {
			t.Fatal(err)
		}
		sids, protected := AllowedSIDs(t, sd)
		if !slices.Equal(sids, tc.want) || protected != tc.protected {
			t.Errorf("AllowedSIDs(%s) = %v, protected %v; want %v, protected %v", tc.sddl, sids, protected, tc.want, tc.protected)
		}
	}
}
