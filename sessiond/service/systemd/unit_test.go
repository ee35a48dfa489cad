package systemd

import (
	"slices"
	"strings"
	"testing"
)

// TestUnitBytes: sections in order, each reason above its directive,
// wrapped, paragraphs kept; Values finds repeated keys.
func TestUnitBytes(t *testing.T) {
	u := &Unit{Name: "x.service", Header: "Written by a test.", Sections: []Section{
		{Name: "Unit", Directives: []Directive{{Key: "Description", Value: "x"}}},
		{Name: "Service", Comment: "First paragraph.\n\nSecond one.", Directives: []Directive{
			{Key: "ExecStart", Value: "/bin/x", Why: strings.Repeat("word ", 20)},
			{Key: "SystemCallFilter", Value: "@system-service"},
			{Key: "SystemCallFilter", Value: "~@privileged"},
		}},
	}}
	want := `# Written by a test.

[Unit]
Description=x

[Service]
# First paragraph.
#
# Second one.
# word word word word word word word word word word word word word word word
# word word word word word
ExecStart=/bin/x
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
`
	if got := string(u.Bytes()); got != want {
		t.Errorf("unit:\n%s\nwant:\n%s", got, want)
	}
	if got := u.Values("Service", "SystemCallFilter"); !slices.Equal(got, []string{"@system-service", "~@privileged"}) {
		t.Errorf("Values = %q", got)
	}
	if got := u.Values("Unit", "ExecStart"); got != nil {
		t.Errorf("Values of another section's key = %q", got)
	}
	if u.Path() != "/etc/systemd/system/x.service" {
		t.Errorf("Path = %s", u.Path())
	}
}
