package collect

import (
	"slices"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// dnfSample is shaped like "dnf -q -C check-update" on Fedora, with a
// wrapped long name and an obsoletes table.
const dnfSample = `Last metadata expiration check: 0:12:01 ago on Mon 03 Jun 2024 10:00:00 AM UTC.

bash.x86_64                      5.2.26-3.fc40                 updates
python3.12.x86_64                3.12.4-1.fc40                 updates
a-very-long-package-name-that-wraps.noarch
                                 1:2.0-1.fc40                  updates
openssl-libs.x86_64              1:3.2.2-1.fc40                fedora-security
kernel.x86_64                    6.9.4-200.fc40                updates
Obsoleting Packages
grub2-tools.x86_64               1:2.06-121.fc40               updates
    grub2-tools.x86_64           1:2.06-120.fc40               @updates
`

func TestParseCheckUpdate(t *testing.T) {
	want := []wire.PendingUpdate{
		{ID: "bash", Version: "5.2.26-3.fc40", Source: "dnf"},
		{ID: "python3.12", Version: "3.12.4-1.fc40", Source: "dnf"},
		{ID: "a-very-long-package-name-that-wraps", Version: "1:2.0-1.fc40", Source: "dnf"},
		{ID: "openssl-libs", Version: "1:3.2.2-1.fc40", Source: "dnf", Security: true},
		{ID: "kernel", Version: "6.9.4-200.fc40", Source: "dnf"},
	}
	got := parseCheckUpdate(dnfSample, "dnf")
	if !slices.EqualFunc(got, want, sameUpdate) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseCheckUpdateJunk(t *testing.T) {
	for _, out := range []string{"", "\n\n", "noarch x y\n", ".x86_64 1.0 repo\n", "a. 1.0 repo\n", "a.b c d\n"} {
		if got := parseCheckUpdate(out, "yum"); len(got) != 0 {
			t.Errorf("%q: got %+v", out, got)
		}
	}
}
