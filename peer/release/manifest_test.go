package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// manifestJSON returns a valid manifest as JSON, after edit changed its
// decoded form (nil: unchanged).
func manifestJSON(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"format":            Format,
		"version":           "0.3.0",
		"min_agent_version": "0.2.0",
		"notes":             "Faster check-ins.\n\tAnd a fix.",
		"created":           "2026-01-05T10:00:00Z",
		"binaries": []any{
			map[string]any{"platform": "linux/amd64", "sha256": strings.Repeat("ab", 32), "size": 1 << 20},
			map[string]any{"platform": "windows/arm64", "sha256": strings.Repeat("0f", 32), "size": 2 << 20},
		},
		"next_key": testKey(t).Public().String(),
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// binary returns the i-th binary of m's list, to edit it.
func binary(m map[string]any, i int) map[string]any {
	return m["binaries"].([]any)[i].(map[string]any)
}

func TestParse(t *testing.T) {
	valid := string(manifestJSON(t, nil))
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	setBin := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { binary(m, 1)[k] = v }
	}
	binaries := func(n int, platform func(i int) string) func(map[string]any) {
		return func(m map[string]any) {
			var bs []any
			for i := range n {
				bs = append(bs, map[string]any{"platform": platform(i), "sha256": strings.Repeat("ab", 32), "size": 1})
			}
			m["binaries"] = bs
		}
	}
	tests := []struct {
		name string
		raw  string                 // the manifest, when not made by edit
		edit func(m map[string]any) // changes a valid manifest
		want string                 // a part of the refusal; "" for none
	}{
		{name: "valid", edit: nil},
		{name: "minimal", edit: func(m map[string]any) {
			delete(m, "min_agent_version")
			delete(m, "notes")
			delete(m, "next_key")
		}},
		{name: "min agent equal to version", edit: set("min_agent_version", "0.3.0")},
		{name: "pre-release", edit: set("version", "0.3.0-rc.1+build7")},
		{name: "every platform", edit: binaries(len(platforms), func(i int) string { return platforms[i] })},
		{name: "blank", raw: " ", want: "EOF"},
		{name: "too large", raw: strings.Repeat(" ", MaxManifest) + valid, want: "1 byte to 32 KiB"},
		{name: "not JSON", raw: "{", want: "unexpected EOF"},
		{name: "not an object", raw: "[]", want: "cannot unmarshal array"},
		{name: "null", raw: "null", want: "format"},
		{name: "unknown field", edit: set("url", "https://example.com"), want: `unknown field "url"`},
		{name: "unknown binary field", edit: setBin("url", "x"), want: `unknown field "url"`},
		{name: "data after", raw: valid + "{}", want: "data after the manifest"},
		{name: "two manifests", raw: valid + valid, want: "data after the manifest"},
		{name: "wrong type", edit: set("version", 3), want: "cannot unmarshal number"},
		{name: "other format", edit: set("format", "readymesh-release/2"), want: `format "readymesh-release/2"`},
		{name: "no format", edit: del("format"), want: `format ""`},
		{name: "no version", edit: del("version"), want: `version ""`},
		{name: "version with v", edit: set("version", "v0.3.0"), want: "starting with a digit"},
		{name: "version too long", edit: set("version", "1."+strings.Repeat("1", 63)), want: "starting with a digit"},
		{name: "version unordered", edit: set("version", "1.x"), want: "cannot be ordered"},
		{name: "version empty pre-release", edit: set("version", "1.2-"), want: "cannot be ordered"},
		{name: "min agent invalid", edit: set("min_agent_version", "dev"), want: "min_agent_version"},
		{name: "min agent unordered", edit: set("min_agent_version", "1..2"), want: "min_agent_version: version \"1..2\" cannot be ordered"},
		{name: "min agent newer", edit: set("min_agent_version", "0.3.1"), want: "newer than the release"},
		{name: "notes too long", edit: set("notes", strings.Repeat("n", MaxNotes+1)), want: "notes: 4097 bytes"},
		{name: "notes with escape", edit: set("notes", "red \x1b[31m"), want: "control character at byte 4"},
		{name: "notes with C1 control", edit: set("notes", "x\u009b"), want: "control character"},
		{name: "no created", edit: del("created"), want: "created is missing"},
		{name: "created not a time", edit: set("created", "yesterday"), want: "cannot parse"},
		{name: "no binaries", edit: del("binaries"), want: "binaries: 0"},
		{name: "empty binaries", edit: set("binaries", []any{}), want: "binaries: 0"},
		{name: "too many binaries", edit: binaries(MaxBinaries+1, func(int) string { return "linux/amd64" }), want: "binaries: 17"},
		{name: "32-bit platform", edit: setBin("platform", "linux/386"), want: `binaries[1]: unknown platform "linux/386"`},
		{name: "other OS", edit: setBin("platform", "freebsd/amd64"), want: "unknown platform"},
		{name: "platform spelt by name", edit: setBin("platform", BinaryName("linux/arm64")), want: "unknown platform"},
		{name: "no platform", edit: setBin("platform", ""), want: "unknown platform"},
		{name: "platform twice", edit: setBin("platform", "linux/amd64"), want: "binaries[1]: platform linux/amd64 named twice"},
		{name: "upper-case hash", edit: setBin("sha256", strings.Repeat("AB", 32)), want: "sha256 must be"},
		{name: "short hash", edit: setBin("sha256", strings.Repeat("ab", 31)), want: "sha256 must be"},
		{name: "no hash", edit: setBin("sha256", ""), want: "sha256 must be"},
		{name: "size zero", edit: setBin("size", 0), want: "size 0"},
		{name: "size negative", edit: setBin("size", -5), want: "size -5"},
		{name: "size too large", edit: setBin("size", 256<<20+1), want: "size 268435457"},
		{name: "size fraction", edit: setBin("size", 1.5), want: "cannot unmarshal number 1.5"},
		{name: "have", edit: setBin("have", 10), want: "have is a broker's count"},
		{name: "next key not a key", edit: set("next_key", "RWQ-not-a-key"), want: "next_key: release: public key"},
		{name: "next key as a file", edit: set("next_key", testKey(t).Public().fileText()), want: "next_key: want the key's base64 line alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			if tt.raw == "" {
				raw = manifestJSON(t, tt.edit)
			}
			m, err := Parse(raw)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse = %v, want it accepted:\n%s", err, raw)
				}
				if len(m.Binaries) == 0 || m.Format != Format {
					t.Fatalf("Parse = %+v: fields missing", m)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want ErrMalformed saying %q", err, tt.want)
			}
		})
	}
}

func TestParseRefusesNothing(t *testing.T) {
	if _, err := Parse(nil); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "1 byte to 32 KiB") {
		t.Fatalf("Parse(nil) = %v, want ErrMalformed", err)
	}
}

func TestParseReadsEveryField(t *testing.T) {
	m, err := Parse(manifestJSON(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s %s %s %q %s %d", m.Format, m.Version, m.MinAgent, m.Notes, m.Created.Format("2006-01-02T15:04"), len(m.Binaries))
	if want := Format + ` 0.3.0 0.2.0 "Faster check-ins.\n\tAnd a fix." 2026-01-05T10:00 2`; got != want {
		t.Errorf("Parse = %s, want %s", got, want)
	}
	b, ok := m.Binary("windows/arm64")
	if !ok || b.SHA256 != strings.Repeat("0f", 32) || b.Size != 2<<20 {
		t.Errorf("Binary(windows/arm64) = %+v, %v", b, ok)
	}
	if _, ok := m.Binary("darwin/arm64"); ok {
		t.Error("Binary(darwin/arm64) found a binary the manifest does not name")
	}
	if m.NextKey != testKey(t).Public().String() {
		t.Errorf("NextKey = %q", m.NextKey)
	}
}

func TestBinaryName(t *testing.T) {
	tests := map[string]string{
		"linux/amd64":   "sessiond-linux-amd64",
		"darwin/arm64":  "sessiond-darwin-arm64",
		"windows/amd64": "sessiond-windows-amd64.exe",
		"windows/arm64": "sessiond-windows-arm64.exe",
	}
	for p, want := range tests {
		if got := BinaryName(p); got != want {
			t.Errorf("BinaryName(%s) = %s, want %s", p, got, want)
		}
	}
	for _, p := range Platforms() {
		if got, ok := platformOf(BinaryName(p)); !ok || got != p {
			t.Errorf("platformOf(BinaryName(%s)) = %s, %v", p, got, ok)
		}
	}
	for _, name := range []string{"sessiond-windows-amd64", "sessiond-linux-amd64.exe", "sessiond-linux-386", "sessiond"} {
		if p, ok := platformOf(name); ok {
			t.Errorf("platformOf(%s) = %s, want none", name, p)
		}
	}
}
