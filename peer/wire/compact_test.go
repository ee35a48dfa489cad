package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPackagesSHA256(t *testing.T) {
	if PackagesSHA256(nil) != PackagesSHA256([]Package{}) {
		t.Error("nil and empty lists hash differently")
	}
	a := []Package{{Name: "openssl", Version: "3.0.13"}, {Name: "bash", Version: "5.2"}}
	b := []Package{{Name: "bash", Version: "5.2"}, {Name: "openssl", Version: "3.0.13"}}
	if PackagesSHA256(a) == PackagesSHA256(b) {
		t.Error("the order of the list does not change the hash")
	}
	if h := PackagesSHA256(a); !isSHA256Hex(h) {
		t.Errorf("hash %q is not a lower-case hex SHA-256", h)
	}

	// What the broker stores is the list after a JSON round trip: it must
	// hash the same as what the agent sent, odd bytes and all.
	for _, pkgs := range [][]Package{
		a,
		{{Name: "a<b>&c", Version: "1"}, {Name: "ünïcode", Version: "2"}},
		{{Name: "bad\xffbyte", Version: "\xc3"}},
	} {
		raw, err := json.Marshal(Snapshot{Packages: pkgs})
		if err != nil {
			t.Fatal(err)
		}
		var stored Snapshot
		if err := json.Unmarshal(raw, &stored); err != nil {
			t.Fatal(err)
		}
		if PackagesSHA256(pkgs) != PackagesSHA256(stored.Packages) {
			t.Errorf("%q hashes differently after a round trip", pkgs)
		}
	}
}

func TestCompactSnapshotValidate(t *testing.T) {
	sum := PackagesSHA256(seedSnapshot().Packages)
	compact := func() CheckIn {
		s := seedSnapshot()
		s.Packages, s.PackagesSHA256 = nil, sum
		return CheckIn{MachineID: "m", Seq: 1, Reason: ReasonQuiet, Snapshot: s}
	}
	ok := compact()
	if err := ok.Validate(); err != nil {
		t.Fatalf("compact quiet check-in: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*CheckIn)
		want string
	}{
		"not quiet":     {func(c *CheckIn) { c.Reason = ReasonInterval }, "only quiet"},
		"with packages": {func(c *CheckIn) { c.Snapshot.Packages = seedSnapshot().Packages }, "leaves packages out"},
		"short hash":    {func(c *CheckIn) { c.Snapshot.PackagesSHA256 = sum[:10] }, "not a hex SHA-256"},
		"upper case":    {func(c *CheckIn) { c.Snapshot.PackagesSHA256 = strings.ToUpper(sum) }, "not a hex SHA-256"},
	} {
		c := compact()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}
