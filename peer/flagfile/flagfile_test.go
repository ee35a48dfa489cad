package flagfile

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testFlags is a flag set of every standard value type, a list and a
// flag.Func.
type testFlags struct {
	fs    *flag.FlagSet
	str   *string
	list  *string
	dur   *time.Duration
	n     *int
	n64   *int64
	u     *uint
	u64   *uint64
	f     *float64
	b     *bool
	acted []string // values the func flag was called with
}

func newTestFlags() *testFlags {
	fs := flag.NewFlagSet("t run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	t := &testFlags{fs: fs}
	t.str = fs.String("str", "dflt", "a `string`")
	t.list = fs.String("list", "a:1", "comma-separated `addr`esses")
	t.dur = fs.Duration("dur", time.Second, "a duration")
	t.n = fs.Int("n", 1, "an int")
	t.n64 = fs.Int64("n64", 2, "an int64")
	t.u = fs.Uint("u", 3, "a uint")
	t.u64 = fs.Uint64("u64", 4, "a uint64")
	t.f = fs.Float64("f", 0.5, "a float")
	t.b = fs.Bool("b", false, "a bool\nover two lines")
	fs.Func("act", "acts when set", func(s string) error { t.acted = append(t.acted, s); return nil })
	DefineConfig(fs, "t")
	return t
}

var testOptions = Options{Program: "t", Lists: []string{"list"}}

// load parses args into a new flag set and loads file (written to a temp
// directory as t.toml when not empty) under env.
func load(t *testing.T, file string, env []string, args ...string) (*testFlags, *Config, error) {
	t.Helper()
	tf := newTestFlags()
	if file != "" {
		path := filepath.Join(t.TempDir(), "t.toml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	if err := tf.fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	opt := testOptions
	opt.Environ = append([]string{}, env...)
	c, err := Load(tf.fs, opt)
	return tf, c, err
}

// TestPrecedence: for each value type, the file sets the value over the
// default, the environment over the file and the command line over both.
func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		key             string
		file, env, flag string // the value each source gives
		get             func(*testFlags) string
	}{
		{key: "str", file: `"from file"`, env: "from env", flag: "from flag",
			get: func(t *testFlags) string { return *t.str }},
		{key: "list", file: `["f:1", "f:2"]`, env: "e:1,e:2", flag: "c:1",
			get: func(t *testFlags) string { return *t.list }},
		{key: "dur", file: `"20s"`, env: "25s", flag: "30s",
			get: func(t *testFlags) string { return t.dur.String() }},
		{key: "n", file: `1_000`, env: "0x10", flag: "-7",
			get: func(t *testFlags) string { return flagString(t.fs, "n") }},
		{key: "n64", file: `9000000000`, env: "9000000001", flag: "9000000002",
			get: func(t *testFlags) string { return flagString(t.fs, "n64") }},
		{key: "u", file: `10`, env: "11", flag: "12",
			get: func(t *testFlags) string { return flagString(t.fs, "u") }},
		{key: "u64", file: `20`, env: "21", flag: "22",
			get: func(t *testFlags) string { return flagString(t.fs, "u64") }},
		{key: "f", file: `0.25`, env: "1e3", flag: "2.5",
			get: func(t *testFlags) string { return flagString(t.fs, "f") }},
		{key: "b", file: `true`, env: "false", flag: "true",
			get: func(t *testFlags) string { return flagString(t.fs, "b") }},
	} {
		envVar := "READYMESH_T_" + strings.ToUpper(tc.key)
		fileDoc := "# comment\n\n" + tc.key + " = " + tc.file + "\n"
		want := map[string]string{
			"file":          fileValue(tc.key, tc.file),
			"file+env":      normal(t, tc.key, tc.env),
			"file+env+flag": normal(t, tc.key, tc.flag),
			"env":           normal(t, tc.key, tc.env),
			"file+flag":     normal(t, tc.key, tc.flag),
			"none":          newTestFlags().fs.Lookup(tc.key).DefValue,
		}
		wantOrigin := map[string]Kind{"file": File, "file+env": Env, "file+env+flag": Flag, "env": Env, "file+flag": Flag, "none": Default}
		for name, w := range want {
			var file string
			var env, args []string
			if strings.Contains(name, "file") {
				file = fileDoc
			}
			if strings.Contains(name, "env") {
				env = []string{envVar + "=" + tc.env}
			}
			if strings.Contains(name, "flag") {
				args = []string{"--" + tc.key + "=" + tc.flag}
			}
			tf, c, err := load(t, file, env, args...)
			if err != nil {
				t.Errorf("%s %s: %v", tc.key, name, err)
				continue
			}
			if got := tc.get(tf); got != w {
				t.Errorf("%s %s: value %q, want %q", tc.key, name, got, w)
			}
			o := c.Origin(tc.key)
			if o.Kind != wantOrigin[name] {
				t.Errorf("%s %s: origin %v, want kind %d", tc.key, name, o, wantOrigin[name])
			}
			if o.Kind == File && o.Line != 3 {
				t.Errorf("%s %s: origin %v, want line 3", tc.key, name, o)
			}
		}
	}
}

// flagString is the flag's value as its String prints it.
func flagString(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

// normal is what the key's flag prints after Set(text).
func normal(t *testing.T, key, text string) string {
	t.Helper()
	fs := newTestFlags().fs
	if err := fs.Set(key, text); err != nil {
		t.Fatalf("Set(%q, %q): %v", key, text, err)
	}
	return flagString(fs, key)
}

// fileValue is what the key's flag prints after the file's TOML value.
func fileValue(key, toml string) string {
	switch key {
	case "str", "dur":
		return strings.Trim(toml, `"`)
	case "list":
		return "f:1,f:2"
	case "n":
		return "1000"
	}
	return toml
}

// TestFileRefusals: every refused key or value names the file and the
// key's line, and the file is refused even when the command line overrides
// the key.
func TestFileRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		args       []string
		want       string // after "t.toml:"
	}{
		{"unknown key", "str = \"x\"\n\nlits = \"a\"\n", nil, `3: unknown key "lits" (did you mean "list"?)`},
		{"unknown key far from any", "zzzzzzzz = 1\n", nil, `1: unknown key "zzzzzzzz"`},
		{"bad duration", "n = 5\ndur = \"20\"\n", nil, `2: dur: time: missing unit in duration "20"`},
		{"bad duration under a flag", "dur = \"x\"\n", []string{"--dur=5s"}, `1: dur: time: invalid duration "x"`},
		{"bad int", "n = 1.5\n", nil, `1: n: invalid value "1.5": parse error`},
		{"bad bool", "b = \"maybe\"\n", nil, `1: b: invalid value "maybe": parse error`},
		{"negative uint", "u = -1\n", nil, `1: u: invalid value "-1": parse error`},
		{"given twice", "n = 1\nstr = \"a\"\nn = 2\n", nil, `3: n: given again (first on line 1)`},
		{"array for one value", "str = [\"a\", \"b\"]\n", nil, `1: str: takes one value, not an array`},
		{"comma in an element", "list = [\"a,b\"]\n", nil, `1: list: element "a,b" holds a comma`},
		{"nested array", "list = [[\"a\"]]\n", nil, `1: list: array element: arrays hold strings, not arrays`},
		{"table", "n = 1\n\n[http]\nn = 2\n", nil, `3: tables are not used`},
		{"array table", "[[x]]\n", nil, `1: tables are not used`},
		{"inline table", "str = { a = 1 }\n", nil, `1: str: tables are not used`},
		{"dotted key", "http.read = \"1s\"\n", nil, `1: unknown key "http.read"`},
		{"dotted key of a flag", "n.x = 1\n", nil, `1: unknown key "n.x"`},
		{"date", "str = 1979-05-27\n", nil, `1: str: dates and times are not flag values`},
		{"config in the file", "config = \"other.toml\"\n", nil, `1: config names the file`},
		{"func flag", "act = \"x\"\n", nil, `1: --act is given on the command line only`},
		{"syntax", "n = 1\nstr = \n", nil, `2: not TOML:`},
		{"syntax, unterminated string", "n = 1\n\nstr = \"abc\n", nil, `3: not TOML:`},
	} {
		tf, c, err := load(t, tc.file, nil, tc.args...)
		if err == nil {
			t.Errorf("%s: loaded, want %q", tc.name, tc.want)
			continue
		}
		if c != nil {
			t.Errorf("%s: a Config with the error %v", tc.name, err)
		}
		if !strings.Contains(err.Error(), "t.toml:"+tc.want) {
			t.Errorf("%s: error %q, want t.toml:%s", tc.name, err, tc.want)
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Origin.Kind != File || fe.Origin.Line == 0 {
			t.Errorf("%s: error %#v, want an *Error with the file's line", tc.name, err)
		}
		if len(tf.acted) > 0 {
			t.Errorf("%s: the func flag acted on %q", tc.name, tf.acted)
		}
	}
}

// TestAllRefusalsAtOnce: every bad line of a file is reported, not only
// the first.
func TestAllRefusalsAtOnce(t *testing.T) {
	_, _, err := load(t, "listne = 1\nn = 2\ndur = \"x\"\n", nil)
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{`t.toml:1: unknown key "listne"`, `t.toml:3: dur: time: invalid duration`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want %q", err, want)
		}
	}
}

// TestArrays: a list flag takes an array, an empty array or a
// comma-separated string.
func TestArrays(t *testing.T) {
	for file, want := range map[string]string{
		`list = ["h:1", "h:2", "[::1]:3"]`:          "h:1,h:2,[::1]:3",
		`list = "h:1,h:2"`:                          "h:1,h:2",
		"list = [\n  \"h:1\", # one\n  \"h:2\",\n]": "h:1,h:2",
		`list = []`: "",
	} {
		tf, _, err := load(t, file+"\n", nil)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if *tf.list != want {
			t.Errorf("%s: list %q, want %q", file, *tf.list, want)
		}
	}
}

// TestEnvironment: unknown variables under the prefix are refused with a
// suggestion, bad values name the variable, and other variables are not
// read.
func TestEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"READYMESH_T_LITS=a", `env READYMESH_T_LITS: no flag --lits of t (did you mean READYMESH_T_LIST?)`},
		{"READYMESH_T_NOPE_NOT_AT_ALL=1", `env READYMESH_T_NOPE_NOT_AT_ALL: no flag --nope-not-at-all of t`},
		{"READYMESH_T_DUR=soon", `env READYMESH_T_DUR: dur: time: invalid duration "soon"`},
		{"READYMESH_T_ACT=x", `env READYMESH_T_ACT: --act is given on the command line only`},
	} {
		_, _, err := load(t, "", []string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.env, err, tc.want)
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Origin.Kind != Env {
			t.Errorf("%s: error %#v, want an *Error from the environment", tc.env, err)
		}
	}
	tf, _, err := load(t, "", []string{"READYMESH_TX_N=5", "READYMESH_N=6", "T_N=7", "READYMESH_T_B=true"})
	if err != nil || *tf.n != 1 || !*tf.b {
		t.Errorf("other programs' variables: n %d, b %v, err %v; want 1, true, nil", *tf.n, *tf.b, err)
	}
}

// TestConfigFromEnvironment: READYMESH_T_CONFIG names the file when
// --config does not; --config wins; no file is read unless named.
func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
	os.WriteFile(a, []byte("n = 10\n"), 0o600)
	os.WriteFile(b, []byte("n = 20\n"), 0o600)
	for _, tc := range []struct {
		env  []string
		args []string
		want int
		by   string
	}{
		{env: []string{"READYMESH_T_CONFIG=" + a}, want: 10, by: "env READYMESH_T_CONFIG"},
		{env: []string{"READYMESH_T_CONFIG=" + a}, args: []string{"--config", b}, want: 20, by: "flag --config"},
		{want: 1},
	} {
		tf := newTestFlags()
		tf.fs.Parse(tc.args)
		c, err := Load(tf.fs, Options{Program: "t", Environ: tc.env})
		if err != nil {
			t.Fatal(err)
		}
		path, by := c.File()
		if *tf.n != tc.want || (path != "") != (tc.by != "") || (tc.by != "" && by.String() != tc.by) {
			t.Errorf("env %q args %q: n %d, file %q named by %v; want %d, by %q", tc.env, tc.args, *tf.n, path, by, tc.want, tc.by)
		}
	}
	tf := newTestFlags()
	tf.fs.Parse([]string{"--config", filepath.Join(dir, "missing.toml")})
	if _, err := Load(tf.fs, Options{Program: "t", Environ: []string{}}); err == nil || !strings.Contains(err.Error(), "missing.toml: open") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, []byte(strings.Repeat("# padding\n", maxFileSize/10+1)), 0o600)
	tf = newTestFlags()
	tf.fs.Parse([]string{"--config", big})
	if _, err := Load(tf.fs, Options{Program: "t", Environ: []string{}}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("file over %d bytes: %v", maxFileSize, err)
	}
}

// TestFuncFlagActsOnce: a flag that acts when set is set by the command
// line alone, once.
func TestFuncFlagActsOnce(t *testing.T) {
	tf, _, err := load(t, "n = 3\n", []string{"READYMESH_T_N=4"}, "--act", "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(tf.acted) != 1 || tf.acted[0] != "x" {
		t.Errorf("func flag called with %q, want once with x", tf.acted)
	}
}

// TestOptions: a list that is no key is a programming error.
func TestOptions(t *testing.T) {
	for _, opt := range []Options{{}, {Program: "t", Lists: []string{"nope"}}, {Program: "t", Lists: []string{"act"}}} {
		if _, err := Load(newTestFlags().fs, opt); err == nil {
			t.Errorf("Load with %+v: no error", opt)
		}
	}
}

// TestPrint: every key with its value, its usage and its origin, and the
// printout loads back to the same values.
func TestPrint(t *testing.T) {
	file := "str = \"tab\\there \\\"q\\\" é\"\nlist = [\"f:1\", \"f:2\"]\nf = 1e21\n"
	tf, c, err := load(t, file, []string{"READYMESH_T_DUR=1m30s", "READYMESH_T_U64=18446744073709551615"}, "--n=-5", "--b")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := c.Print(&out); err != nil {
		t.Fatal(err)
	}
	path, _ := c.File()
	for _, want := range []string{
		"# Effective configuration of t.\n",
		"# File: " + path + " (named by flag --config).\n",
		"\n# a string\nstr = \"tab\\there \\\"q\\\" é\" # " + path + ":1\n",
		"list = [\"f:1\", \"f:2\"] # " + path + ":2\n",
		"f = 1e+21 # " + path + ":3\n",
		"dur = \"1m30s\" # env READYMESH_T_DUR\n",
		"u64 = \"18446744073709551615\" # env READYMESH_T_U64\n",
		"n = -5 # flag --n\n",
		"# a bool\n# over two lines\nb = true # flag --b\n",
		"n64 = 2 # default\n",
		"u = 3 # default\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Print wrote\n%s\nwithout %q", out.String(), want)
		}
	}
	for _, not := range []string{"act =", "config ="} {
		if strings.Contains(out.String(), not) {
			t.Errorf("Print wrote %q:\n%s", not, out.String())
		}
	}
	back, _, err := load(t, out.String(), nil)
	if err != nil {
		t.Fatalf("loading the printout: %v\n%s", err, out.String())
	}
	tf.fs.VisitAll(func(f *flag.Flag) {
		if f.Name == ConfigFlag || f.Name == "act" {
			return
		}
		if got, want := flagString(back.fs, f.Name), f.Value.String(); got != want {
			t.Errorf("printout loaded back: %s = %q, want %q", f.Name, got, want)
		}
	})
}

// FuzzParseFile: no document panics the parser or loses an error's line.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"n = 1\n", "list = [\"a\", \"b\"]\n", "[t]\nx=1", "a.b = 1979-05-27\n", "s = \"\\u00e9\"\n", "x = [1, [2]]", "= 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		entries, err := parseFile("f.toml", []byte(doc))
		var fe *Error
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("error %v is not an *Error", err)
		}
		for _, e := range entries {
			if e.line < 1 {
				t.Fatalf("entry %+v without a line", e)
			}
		}
	})
}
