package collect

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// The Windows mapping tests run on any system from registry exports in
// testdata/windows, made the way an administrator would capture them:
//
//	reg export "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion" currentversion.reg
//	reg export "HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall" uninstall-64.reg /reg:64
//	reg export "HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall" uninstall-32.reg
//
// They are reconstructions in the real format (UTF-16LE with a byte order
// mark, CRLF, regedit's escaping and 80-column hex wrapping) of the values
// those releases have, written without access to a Windows machine; the
// CurrentVersion exports are cut to the key's own values and a few of its
// subkeys. parseRegFile reads that format for the tests only: the agent
// reads the registry through its API.

// regFile is a parsed .reg export: each key's values as the collectors
// get them from the registry: strings as written, dword and hex(b)
// (qword) in decimal, hex(2) (expandable) and hex(7) (multi-string, lines
// joined by "\n") decoded, other binary data in hex.
type regFile struct {
	keys   []string // in file order
	values map[string]map[string]string
}

// loadRegFile parses testdata/windows/name.
func loadRegFile(t testing.TB, name string) *regFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", name))
	if err != nil {
		t.Fatal(err)
	}
	rf, err := parseRegFile(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rf
}

const regHeader = "Windows Registry Editor Version 5.00"

// parseRegFile parses a regedit 5 export.
func parseRegFile(b []byte) (*regFile, error) {
	text, err := decodeUTF16LE(b)
	if err != nil {
		return nil, err
	}
	lines := joinContinued(strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n"))
	if len(lines) == 0 || lines[0].text != regHeader {
		return nil, errors.New("not a regedit 5 export: the first line is not the header")
	}
	rf := &regFile{values: map[string]map[string]string{}}
	var key string
	for _, l := range lines[1:] {
		s := l.text
		switch {
		case s == "" || s[0] == ';':
		case s[0] == '[':
			if !strings.HasSuffix(s, "]") || len(s) < 3 || s[1] == '-' {
				return nil, fmt.Errorf("line %d: bad key line %q", l.n, s)
			}
			key = s[1 : len(s)-1]
			if _, dup := rf.values[key]; !dup {
				rf.keys = append(rf.keys, key)
				rf.values[key] = map[string]string{}
			}
		case key == "":
			return nil, fmt.Errorf("line %d: value before any key", l.n)
		default:
			name, val, err := parseRegValue(s)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", l.n, err)
			}
			rf.values[key][name] = val
		}
	}
	return rf, nil
}

// decodeUTF16LE decodes text that starts with the UTF-16LE byte order
// mark, as reg export writes it.
func decodeUTF16LE(b []byte) (string, error) {
	if !bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		return "", errors.New("no UTF-16LE byte order mark")
	}
	b = b[2:]
	if len(b)%2 != 0 {
		return "", errors.New("odd number of bytes in UTF-16 text")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}

type regLine struct {
	n    int // first line number, from 1
	text string
}

// joinContinued joins the lines regedit wraps with a trailing backslash.
func joinContinued(raw []string) []regLine {
	var out []regLine
	for i := 0; i < len(raw); i++ {
		l := regLine{n: i + 1, text: raw[i]}
		for strings.HasSuffix(l.text, `\`) && !strings.HasSuffix(l.text, `"`) && i+1 < len(raw) {
			i++
			l.text = strings.TrimSuffix(l.text, `\`) + strings.TrimLeft(raw[i], " ")
		}
		out = append(out, l)
	}
	return out
}

// parseRegValue parses `"name"=data` or `@=data`.
func parseRegValue(s string) (name, val string, err error) {
	rest := s
	if strings.HasPrefix(s, "@=") {
		name, rest = "", s[1:]
	} else {
		if name, rest, err = regQuoted(s); err != nil {
			return "", "", err
		}
	}
	data, ok := strings.CutPrefix(rest, "=")
	if !ok {
		return "", "", fmt.Errorf("no = after the name in %q", s)
	}
	val, err = regData(data)
	if err != nil {
		return "", "", fmt.Errorf("value %q: %w", name, err)
	}
	return name, val, nil
}

// regQuoted reads a quoted string with regedit's \\ and \" escapes from
// the start of s, returning it and what follows.
func regQuoted(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("expected a quoted string in %q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return "", "", fmt.Errorf("bad escape in %q", s)
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated string in %q", s)
}

// regData converts a value's data to the form the collectors get.
func regData(d string) (string, error) {
	switch {
	case strings.HasPrefix(d, `"`):
		v, rest, err := regQuoted(d)
		if err == nil && rest != "" {
			err = fmt.Errorf("text after the string: %q", rest)
		}
		return v, err
	case strings.HasPrefix(d, "dword:"):
		n, err := strconv.ParseUint(d[len("dword:"):], 16, 32)
		if err != nil || len(d) != len("dword:")+8 {
			return "", fmt.Errorf("bad dword %q", d)
		}
		return strconv.FormatUint(n, 10), nil
	}
	kind, bytesText, ok := strings.Cut(d, ":")
	if !ok || !strings.HasPrefix(kind, "hex") {
		return "", fmt.Errorf("unknown data %q", d)
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(bytesText, ",", ""))
	if err != nil {
		return "", fmt.Errorf("bad hex data: %w", err)
	}
	return regBinary(kind, raw)
}

// regBinary decodes hex data by its type.
func regBinary(kind string, raw []byte) (string, error) {
	switch kind {
	case "hex(b)":
		if len(raw) != 8 {
			return "", fmt.Errorf("qword of %d bytes", len(raw))
		}
		return strconv.FormatUint(binary.LittleEndian.Uint64(raw), 10), nil
	case "hex(2)", "hex(7)":
		s, err := decodeUTF16LE(append([]byte{0xff, 0xfe}, raw...))
		if err != nil {
			return "", err
		}
		s = strings.TrimRight(s, "\x00")
		return strings.ReplaceAll(s, "\x00", "\n"), nil
	case "hex", "hex(0)", "hex(3)":
		return hex.EncodeToString(raw), nil
	}
	return "", fmt.Errorf("unknown hex type %q", kind)
}

// subkeyEntries returns the direct subkeys of root as Uninstall entries,
// with the values the packages collector reads, as readUninstall does.
func (rf *regFile) subkeyEntries(root string) []uninstallEntry {
	var out []uninstallEntry
	for _, k := range rf.keys {
		name, ok := strings.CutPrefix(k, root+`\`)
		if !ok || strings.Contains(name, `\`) {
			continue
		}
		vals := map[string]string{}
		for _, v := range uninstallValues {
			if x, ok := rf.values[k][v]; ok {
				vals[v] = x
			}
		}
		out = append(out, uninstallEntry{Key: name, Values: vals})
	}
	return out
}

// encodeRegFile writes text as reg export does: UTF-16LE after a byte
// order mark, CRLF line ends.
func encodeRegFile(text string) []byte {
	u := utf16.Encode([]rune(strings.ReplaceAll(text, "\n", "\r\n")))
	b := []byte{0xff, 0xfe}
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func TestParseRegFile(t *testing.T) {
	rf, err := parseRegFile(encodeRegFile(regHeader + `

[HKEY_LOCAL_MACHINE\SOFTWARE\Test]
@="default"
"Path"="C:\\Program Files\\\"Quoted\""
"Count"=dword:0000000a
"Time"=hex(b):c2,f4,00,00,00,00,00,00
"Expand"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,74,\
  00,25,00,00,00
"Multi"=hex(7):61,00,00,00,62,00,00,00,00,00
"Blob"=hex:01,02,ff

[HKEY_LOCAL_MACHINE\SOFTWARE\Test\Sub]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"": "default", "Path": `C:\Program Files\"Quoted"`, "Count": "10", "Time": "62658",
		"Expand": "%SystemRoot%", "Multi": "a\nb", "Blob": "0102ff",
	}
	got := rf.values[`HKEY_LOCAL_MACHINE\SOFTWARE\Test`]
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %q, want %q", k, got[k], v)
		}
	}
	if len(rf.keys) != 2 {
		t.Errorf("keys %q", rf.keys)
	}
}

func TestParseRegFileMalformed(t *testing.T) {
	for name, body := range map[string][]byte{
		"utf-8":        []byte(regHeader + "\r\n"),
		"no header":    encodeRegFile("REGEDIT4\n"),
		"odd bytes":    append(encodeRegFile(regHeader+"\n"), 0x41),
		"value first":  encodeRegFile(regHeader + "\n\"A\"=\"b\"\n"),
		"bad key":      encodeRegFile(regHeader + "\n[HKEY_LOCAL_MACHINE\\X\n"),
		"deletion":     encodeRegFile(regHeader + "\n[-HKEY_LOCAL_MACHINE\\X]\n"),
		"bad dword":    encodeRegFile(regHeader + "\n[K]\n\"A\"=dword:xyz\n"),
		"short dword":  encodeRegFile(regHeader + "\n[K]\n\"A\"=dword:1\n"),
		"bad hex":      encodeRegFile(regHeader + "\n[K]\n\"A\"=hex:0g\n"),
		"short qword":  encodeRegFile(regHeader + "\n[K]\n\"A\"=hex(b):01\n"),
		"unterminated": encodeRegFile(regHeader + "\n[K]\n\"A\"=\"open\n"),
		"bad escape":   encodeRegFile(regHeader + "\n[K]\n\"A\"=\"a\\nb\"\n"),
		"no equals":    encodeRegFile(regHeader + "\n[K]\n\"A\"\n"),
	} {
		if _, err := parseRegFile(body); err == nil {
			t.Errorf("%s: parsed", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
