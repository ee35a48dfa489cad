package collect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows/registry"

	"github.com/readymesh/readymesh/peer/wire"
)

// scratchKey creates an empty key below HKEY_CURRENT_USER for one test
// and deletes it, with its subkeys, when the test ends.
func scratchKey(t *testing.T) string {
	t.Helper()
	path := fmt.Sprintf(`Software\readymesh-test\%s-%d`, t.Name(), time.Now().UnixNano())
	k, _, err := registry.CreateKey(registry.CURRENT_USER, path, registry.ALL_ACCESS)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	t.Cleanup(func() {
		if err := deleteTree(registry.CURRENT_USER, path); err != nil {
			t.Errorf("delete %s: %v", path, err)
		}
		registry.DeleteKey(registry.CURRENT_USER, `Software\readymesh-test`) // fails while another test's key is there
	})
	return path
}

func deleteTree(root registry.Key, path string) error {
	k, err := registry.OpenKey(root, path, registry.ENUMERATE_SUB_KEYS)
	if err != nil {
		return err
	}
	names, err := k.ReadSubKeyNames(0)
	k.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := deleteTree(root, path+`\`+n); err != nil {
			return err
		}
	}
	return registry.DeleteKey(root, path)
}

// setValues creates key path (below HKEY_CURRENT_USER) with values: a
// string is REG_SZ, a uint32 REG_DWORD, a uint64 REG_QWORD, a []byte
// REG_BINARY, an expand value REG_EXPAND_SZ.
func setValues(t *testing.T, path string, values map[string]any) {
	t.Helper()
	k, _, err := registry.CreateKey(registry.CURRENT_USER, path, registry.ALL_ACCESS)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for name, v := range values {
		switch v := v.(type) {
		case string:
			err = k.SetStringValue(name, v)
		case expand:
			err = k.SetExpandStringValue(name, string(v))
		case uint32:
			err = k.SetDWordValue(name, v)
		case uint64:
			err = k.SetQWordValue(name, v)
		case []byte:
			err = k.SetBinaryValue(name, v)
		default:
			t.Fatalf("value %s: type %T", name, v)
		}
		if err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
	}
}

type expand string

// TestReadUninstallRegistry reads an Uninstall key through the registry
// API, with the value types installers really write and some they should
// not.
func TestReadUninstallRegistry(t *testing.T) {
	root := scratchKey(t)
	for name, vals := range map[string]map[string]any{
		"7-Zip":       {"DisplayName": "7-Zip 23.01 (x64)", "DisplayVersion": "23.01", "EstimatedSize": uint32(5796)},
		"{VCRT-MIN}":  {"DisplayName": "Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.38.33130", "SystemComponent": uint32(1)},
		"{QWORD}":     {"DisplayName": "Hidden by a qword", "SystemComponent": uint64(1)},
		"{SZ}":        {"DisplayName": "Hidden by a string", "SystemComponent": "1"},
		"KB5002519":   {"DisplayName": "Security Update for Microsoft Office 2016 (KB5002519)", "ParentKeyName": "Office16.PROPLUS", "ReleaseType": "Security Update"},
		"AddressBook": {},
		"Expanded":    {"DisplayName": expand("%ProgramFiles%\\Tool"), "DisplayVersion": "2"},
		"Huge":        {"DisplayName": strings.Repeat("x", maxRegValue), "DisplayVersion": "1"},
		"Binary":      {"DisplayName": []byte("not text"), "DisplayVersion": "1"},
	} {
		setValues(t, root+`\Uninstall\`+name, vals)
	}
	entries, truncated, err := readUninstall(registry.CURRENT_USER, root+`\Uninstall`, 0)
	t.Logf("read %d entries: %v", len(entries), err)
	if err == nil || !strings.Contains(err.Error(), "2 entries of") || truncated {
		t.Errorf("error %v (truncated %v), want the two unreadable entries counted", err, truncated)
	}
	pkgs, _ := windowsPackages(entries)
	wantNames := []string{`%ProgramFiles%\Tool=2`, "7-Zip 23.01 (x64)=23.01"}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"="+p.Version)
	}
	if !slices.Equal(got, wantNames) {
		t.Errorf("packages %q, want %q", got, wantNames)
	}

	missing, truncated, err := readUninstall(registry.CURRENT_USER, root+`\NoSuchKey`, 0)
	if err != nil || missing == nil || len(missing) != 0 || truncated {
		t.Errorf("missing key: %v, %v, %v; want no entries and no error", missing, truncated, err)
	}
}

// TestReadCurrentVersionRegistry reads a CurrentVersion-like key through
// the registry API into the OS mapping.
func TestReadCurrentVersionRegistry(t *testing.T) {
	root := scratchKey(t)
	setValues(t, root, map[string]any{
		"ProductName": "Windows 10 Pro", "EditionID": "Professional", "DisplayVersion": "23H2", "ReleaseId": "2009",
		"CurrentBuildNumber": "22631", "CurrentBuild": "22631", "UBR": uint32(3007),
		"CurrentMajorVersionNumber": uint32(10), "CurrentMinorVersionNumber": uint32(0), "CurrentVersion": "6.3",
		"InstallTime": uint64(133496856177201734), "DigitalProductId": []byte{0xa4, 0, 0, 0},
	})
	vals, err := readValues(registry.CURRENT_USER, root, 0, currentVersionValues)
	if err != nil {
		t.Fatal(err)
	}
	o, err := windowsOS(vals)
	want := wire.OS{Family: "windows", ID: "windows", Name: "Windows 11 Pro", Edition: "Professional",
		DisplayVersion: "23H2", Build: "22631.3007", Version: "10.0.22631"}
	if err != nil || o != want {
		t.Errorf("got %+v, %v\nwant %+v", o, err, want)
	}

	setValues(t, root, map[string]any{"UBR": []byte{1, 2, 3, 4}, "EditionID": strings.Repeat("E", maxRegValue)})
	vals, err = readValues(registry.CURRENT_USER, root, 0, currentVersionValues)
	if err == nil || !strings.Contains(err.Error(), "value EditionID") || !strings.Contains(err.Error(), "value UBR") {
		t.Errorf("error %v, want UBR and EditionID named", err)
	}
	if o, _ := windowsOS(vals); o.Build != "22631" || o.Edition != "" || o.Name != "Windows 11 Pro" {
		t.Errorf("with unreadable values: %+v", o)
	}
	if _, err := readValues(registry.CURRENT_USER, root+`\Missing`, 0, currentVersionValues); err == nil {
		t.Error("no error for a missing key")
	}
}
