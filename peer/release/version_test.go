package release

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.10.0", "1.9.3", 1},
		{"1.2.0", "1.2.1", -1},
		{"2.0.0", "10.0.0", -1},
		{"1.2.0", "1.2.0", 0},
		{"v1.2.0", "1.2.0", 0},
		{"V2.0", "v1.9", 1},
		{"1.2", "1.2.0", 0},
		{"1.2", "1.2.1", -1},
		{"1.02.0", "1.2.0", 0},
		{"99999999999999999999999.0", "1.0", 1}, // wider than uint64
		{"1.2.0-rc1", "1.2.0", -1},
		{"1.2.0-rc1", "1.1.9", 1},
		{"1.2.0-rc2", "1.2.0-rc10", -1},
		{"1.2.0-alpha", "1.2.0-beta", -1},
		{"1.2.0-alpha", "1.2.0-alpha.1", -1},
		{"1.2.0-1", "1.2.0-alpha", -1},
		{"1.2.0-rc.2", "1.2.0-rc.10", -1},
		{"1.2.0-rc.02", "1.2.0-rc.2", 0},
		{"1.2.0+build7", "1.2.0", 0},
		{"1.2.0-rc1+build7", "1.2.0-rc1", 0},
		// unparsable: byte-wise
		{"dev", "dev", 0},
		{"dev", "1.0.0", 1},
		{"", "1.0", -1},
		{"1.x", "1.2", 1},
		{"1..2", "1.2", -1},
		{"1.2.", "1.2", 1},
		{"1.2.0-", "1.2.0", 1},
		{"1.2.0+", "1.2.0", 1},
		{"v", "1", 1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestComparableVersion(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"1.2.0", true},
		{"v1.2", true},
		{"1.2.0-rc.1+build7", true},
		{"0", true},
		{"", false},
		{"dev", false},
		{"1.x", false},
		{"1..2", false},
		{"1.2.0-", false},
		{"1.2.0+", false},
		{"v", false},
	}
	for _, tt := range tests {
		if got := ComparableVersion(tt.v); got != tt.want {
			t.Errorf("ComparableVersion(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
