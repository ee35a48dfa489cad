package systemd

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestExec: words that need no quoting are written as they are; the
// others are quoted, and percent and dollar signs doubled, so systemd
// neither expands a specifier or a variable nor splits a word.
func TestExec(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/opt/readymesh/bin/sessiond", "run", "--state", "/var/lib/readymesh/sessiond", "--interval=30m0s"},
			"/opt/readymesh/bin/sessiond run --state /var/lib/readymesh/sessiond --interval=30m0s"},
		{[]string{"/opt/x", "--inventory=/srv/my files/inv.json"}, `/opt/x "--inventory=/srv/my files/inv.json"`},
		{[]string{"/opt/x", ""}, `/opt/x ""`},
		{[]string{"/opt/x", ";"}, `/opt/x ";"`},
		{[]string{"/opt/x", `say "hi"`, `C:\dir`, "it's"}, `/opt/x "say \"hi\"" "C:\\dir" "it's"`},
		{[]string{"/opt/x", "100%", "$HOME", "${PATH}"}, `/opt/x 100%% $$HOME $${PATH}`},
		{[]string{"/opt/x", "a\tb\nc\x01"}, `/opt/x "a\tb\nc\x01"`},
		{[]string{"/opt/my dir/x"}, `"/opt/my dir/x"`},
	} {
		got := Exec(tc.argv)
		if got != tc.want {
			t.Errorf("Exec(%q) = %s, want %s", tc.argv, got, tc.want)
		}
		back, err := SplitExec(got)
		if err != nil || !slices.Equal(back, tc.argv) {
			t.Errorf("SplitExec(%s) = %q, %v; want %q", got, back, err, tc.argv)
		}
	}
}

// TestSplitExec reads what systemd reads, and refuses what it would
// expand at run time or run differently.
func TestSplitExec(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{`/bin/a  b	'c d' "e'f" g\sh \x41`, []string{"/bin/a", "b", "c d", "e'f", "g h", "A"}},
		{`/bin/a "" '' x"y z"`, []string{"/bin/a", "", "", "xy z"}},
		{"/bin/a \"\\a\\b\\f\\v\\r\\\\\"", []string{"/bin/a", "\a\b\f\v\r\\"}},
		{`/bin/a %% $$`, []string{"/bin/a", "%", "$"}},
	} {
		got, err := SplitExec(tc.value)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitExec(%s) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ value, why string }{
		{``, "no command"},
		{`sessiond run`, "not an absolute path"},
		{`-/bin/a`, "not an absolute path"},
		{`/bin/a %n`, "specifier"},
		{`/bin/a 100%`, "specifier"},
		{`/bin/a $HOME`, "environment variable"},
		{`/bin/a ${HOME}`, "environment variable"},
		{`/bin/a ; /bin/b`, "separator"},
		{`/bin/a "open`, "unterminated quote"},
		{`/bin/a \q`, `escape \q`},
		{`/bin/a \`, "backslash at the end"},
	} {
		got, err := SplitExec(tc.value)
		if !errors.Is(err, ErrExecSyntax) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("SplitExec(%s) = %q, %v; want ErrExecSyntax saying %q", tc.value, got, err, tc.why)
		}
	}
}

// FuzzExec: whatever arguments a command has (no NUL: execve cannot pass
// one), systemd reads back exactly them from what Exec writes.
func FuzzExec(f *testing.F) {
	f.Add("/opt/readymesh/bin/broker", "--name", "eu 1", "100%")
	f.Add("/opt/x", `"\`, "$$A", ";")
	f.Add("/opt/x", "", "'", "\n\t\x7f")
	f.Fuzz(func(t *testing.T, exe, a, b, c string) {
		argv := []string{"/" + exe, a, b, c}
		for _, s := range argv {
			if strings.ContainsRune(s, 0) {
				t.Skip("a NUL cannot be in an argument")
			}
		}
		v := Exec(argv)
		if strings.ContainsAny(v, "\n\r") {
			t.Fatalf("Exec(%q) = %q spans lines", argv, v)
		}
		back, err := SplitExec(v)
		if err != nil || !slices.Equal(back, argv) {
			t.Fatalf("SplitExec(Exec(%q)) = SplitExec(%s) = %q, %v", argv, v, back, err)
		}
	})
}
