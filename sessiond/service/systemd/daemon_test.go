package systemd

import (
	"strings"
	"testing"
)

// TestDaemonUnit: a daemon's unit waits for the network, starts at boot,
// and keeps the start limits, the service section and each reason given.
func TestDaemonUnit(t *testing.T) {
	d := &Daemon{Name: "x.service", Header: "Written by a test.", Description: "x",
		NetworkWhy:  "It dials out.",
		StartLimits: []Directive{{Key: "StartLimitBurst", Value: "5"}},
		Service:     Section{Name: "ignored", Comment: "No sandbox.", Directives: []Directive{{Key: "ExecStart", Value: "/bin/x"}}},
	}
	want := `# Written by a test.

[Unit]
Description=x
Wants=network-online.target
# It dials out.
After=network-online.target
StartLimitBurst=5

[Service]
# No sandbox.
ExecStart=/bin/x

[Install]
WantedBy=multi-user.target
`
	u := d.Unit()
	if got := string(u.Bytes()); got != want || u.Name != "x.service" {
		t.Errorf("unit %s:\n%s\nwant:\n%s", u.Name, got, want)
	}
	d.BootWhy = "At boot."
	if got := string(d.Unit().Bytes()); !strings.HasSuffix(got, "\n[Install]\n# At boot.\nWantedBy=multi-user.target\n") {
		t.Errorf("unit without the boot reason above WantedBy:\n%s", got)
	}
}
