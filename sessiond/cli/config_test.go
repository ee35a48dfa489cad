package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
	"github.com/readymesh/readymesh/sessiond/update"
)

// writeConfig writes text to agent.toml in a new directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(testdir.New(t), "agent.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunConfig: sessiond run refuses a config file's unknown key with
// its line (exit status 2) and holds the file's values to the same checks
// as flags; the environment is read under the same rules.
func TestRunConfig(t *testing.T) {
	bad := writeConfig(t, "interval = \"30m\"\nintervl = \"1h\"\n")
	always := writeConfig(t, "state = \"/nonexistent/state\"\nconsent = \"always\"\n")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		code int
		err  string
	}{
		{name: "unknown key", args: []string{"run", "--state", "x", "--config", bad}, code: 2,
			err: bad + `:2: unknown key "intervl" (did you mean "interval"?)`},
		{name: "file values checked", args: []string{"run", "--config", always}, code: 1, err: `--consent: consent policy "always"`},
		{name: "unknown variable", args: []string{"run", "--state", "x"}, env: "READYMESH_SESSIOND_INTERVL=1h", code: 2,
			err: "env READYMESH_SESSIOND_INTERVL: no flag --intervl of sessiond (did you mean READYMESH_SESSIOND_INTERVAL?)"},
		{name: "bad variable", args: []string{"run", "--state", "x"}, env: "READYMESH_SESSIOND_INTERVAL=often", code: 2,
			err: `env READYMESH_SESSIOND_INTERVAL: interval: time: invalid duration "often"`},
		// The watchdog's mark for a binary on trial is not a flag's
		// variable, so sessiond run reads past it to the missing state.
		{name: "trial mark", args: []string{"run", "--state", "/nonexistent/state"}, env: update.TrialEnv + "=1", code: 1,
			err: "/nonexistent/state"},
		{name: "install reads the file", args: []string{"install", "--print", "--config", bad}, code: 2, err: bad + `:2: unknown key "intervl"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			_, _, err := run(t, tc.args...)
			if got := exitCode(err); got != tc.code || err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: exit %d, error %v; want %d, %q", tc.args, got, err, tc.code, tc.err)
			}
		})
	}
}

// TestInstallPassesConfig: install passes --config on to the service's
// command line like the other run flags. For this system the file is read
// first (checkConfig), so the test names one that exists; for another
// system it is not read, and the path is in that system's form.
func TestInstallPassesConfig(t *testing.T) {
	foreign := map[string]string{"windows": `C:\rm\agent.toml`, "linux": "/etc/readymesh/agent.toml"}
	other := map[bool]string{true: "linux", false: "windows"}[runtime.GOOS == "windows"]
	for _, tc := range []struct{ name, goos, config string }{
		{name: "this system", goos: runtime.GOOS, config: writeConfig(t, "interval = \"1h\"\n")},
		{name: "another system", goos: other, config: foreign[other]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(t, "install", "--print", "--os", tc.goos, "--config", tc.config, "--interval", "30m")
			if err != nil {
				t.Fatal(err)
			}
			if want := "--config=" + tc.config + " --interval=30m0s"; !strings.Contains(out, want) {
				t.Errorf("install --print --os %s printed\n%s\nwithout %q", tc.goos, out, want)
			}
		})
	}
}
