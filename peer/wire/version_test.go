package wire

import (
	"strings"
	"testing"
)

// TestCheckVersions: a peer is served when its range meets ours, and
// refused otherwise with both ranges and what to upgrade named; a peer of
// the first release (no versions sent) speaks 1.
func TestCheckVersions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		theirs Versions
		ours   Versions
		want   []string // substrings of the refusal; nil: served
	}{
		{"first release", Versions{}, OurVersions(), nil},
		{"this build", OurVersions(), OurVersions(), nil},
		{"a newer peer that still speaks ours", Versions{Proto: 4, MinProto: 1}, Versions{Proto: 1}, nil},
		{"too new", Versions{Proto: 4, MinProto: 3}, Versions{Proto: 1},
			[]string{"agent 9.9.9 speaks protocol 3–4", "broker 0.1.0's 1", "upgrade the brokers first"}},
		{"too old", Versions{}, Versions{Proto: 3, MinProto: 2},
			[]string{"agent 9.9.9 speaks protocol 1", "broker 0.1.0 speaks 2–3", "upgrade the agent 9.9.9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := checkVersions(tc.theirs, tc.ours, "agent 9.9.9", "broker 0.1.0")
			if tc.want == nil {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				return
			}
			if e == nil || e.Code != CodeVersion {
				t.Fatalf("got %v, want a %s refusal", e, CodeVersion)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("refusal %q lacks %q", e.Message, w)
				}
			}
		})
	}
}
