package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRolloutArgsValidate(t *testing.T) {
	tests := []struct {
		desc string
		a    RolloutArgs
		err  string // part of the error, "" for none
	}{
		{"defaults", RolloutArgs{Version: "0.3.0", All: true}, ""},
		{"fail 0% pauses at the first failure", RolloutArgs{Version: "0.3.0", All: true, FailPct: new(0)}, ""},
		{"fail 100%", RolloutArgs{Version: "0.3.0", All: true, FailPct: new(100)}, ""},
		{"fail below 0%", RolloutArgs{Version: "0.3.0", All: true, FailPct: new(-1)}, "fail threshold"},
		{"fail above 100%", RolloutArgs{Version: "0.3.0", All: true, FailPct: new(101)}, "fail threshold"},
		{"canary above 100%", RolloutArgs{Version: "0.3.0", All: true, CanaryPct: 101}, "canary"},
		{"no machines", RolloutArgs{Version: "0.3.0"}, "--client C"},
	}
	for _, tc := range tests {
		err := tc.a.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.desc, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.desc, err, tc.err)
		}
	}
}

// TestRolloutArgsFailPctJSON: an absent (or null) fail_pct decodes as
// nil, the broker's default, and an explicit 0 as 0; encoding keeps the
// difference.
func TestRolloutArgsFailPctJSON(t *testing.T) {
	tests := []struct {
		in   string
		want *int
	}{
		{`{"version":"0.3.0","all":true,"canary_pct":25}`, nil},
		{`{"version":"0.3.0","all":true,"canary_pct":25,"fail_pct":null}`, nil},
		{`{"version":"0.3.0","all":true,"canary_pct":25,"fail_pct":0}`, new(0)},
		{`{"version":"0.3.0","all":true,"canary_pct":25,"fail_pct":20}`, new(20)},
	}
	for _, tc := range tests {
		var a RolloutArgs
		if err := json.Unmarshal([]byte(tc.in), &a); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if (a.FailPct == nil) != (tc.want == nil) || a.FailPct != nil && *a.FailPct != *tc.want {
			t.Errorf("%s: FailPct %v, want %v", tc.in, showPct(a.FailPct), showPct(tc.want))
			continue
		}
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(string(raw), `"fail_pct"`)
		if has != (tc.want != nil) {
			t.Errorf("%s encodes as %s", tc.in, raw)
		}
	}
}

func showPct(p *int) any {
	if p == nil {
		return "nil"
	}
	return *p
}
