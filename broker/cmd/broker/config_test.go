package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// mainEnv, set to 1, makes TestBrokerMain run the broker's main: the test
// binary then stands in for the broker binary, so a test sees its real
// exit status, stdout and stderr.
const mainEnv = "BROKER_TEST_MAIN"

// TestBrokerMain runs main with the arguments after "--" when brokerCmd
// started this process, and does nothing in a normal test run.
func TestBrokerMain(t *testing.T) {
	if os.Getenv(mainEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Args = append([]string{"broker"}, args...)
	main()
	os.Exit(0)
}

// brokerCmd runs the broker's main in a new process with args and, of the
// READYMESH_BROKER_* variables, only those in env; it returns stdout,
// stderr and the exit status.
func brokerCmd(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestBrokerMain$", "--"}, args...)...)
	cmd.Env = append(mainEnviron(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("broker %q: %v", args, err)
	}
	return out.String(), errOut.String(), 0
}

// mainEnviron is this process's environment without READYMESH_BROKER_*
// variables, for a process that runs main.
func mainEnviron() []string {
	env := []string{mainEnv + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "READYMESH_BROKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// writeFile writes text to name in a new temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrint: broker config print shows the file's values under the
// environment's under the flags', each with where it came from.
func TestConfigPrint(t *testing.T) {
	path := writeFile(t, "broker.toml", `# a test broker
listen = ["127.0.0.1:7400", "127.0.0.1:7410"]
http-read-timeout = "20s"
name = "from-file"
region = "from-file"
gc-percent = 80
`)
	out, errOut, code := brokerCmd(t, []string{"READYMESH_BROKER_HTTP_READ_TIMEOUT=25s", "READYMESH_BROKER_REGION=eu-west"},
		"config", "print", "--config", path, "--name", "from-flag")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{
		"# File: " + path + " (named by flag --config).\n",
		"\nlisten = [\"127.0.0.1:7400\", \"127.0.0.1:7410\"] # " + path + ":2\n",
		"\nhttp-read-timeout = \"25s\" # env READYMESH_BROKER_HTTP_READ_TIMEOUT\n",
		"\nregion = \"eu-west\" # env READYMESH_BROKER_REGION\n",
		"\nname = \"from-flag\" # flag --name\n",
		"\ngc-percent = 80 # " + path + ":6\n",
		"\ndata = \"/var/lib/readymesh/broker\" # default\n",
		"\njoin = [] # default\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config print wrote\n%s\nwithout %q", out, want)
		}
	}
	if strings.Contains(out, "\nconfig =") {
		t.Errorf("config print wrote the config flag as a key:\n%s", out)
	}
}

// TestRunRefusesBadConfig: broker run refuses a bad file or variable with
// its line or name and exits 2 before it opens anything (its data
// directory is never made).
func TestRunRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        []string
		want       []string
	}{
		{name: "unknown key", file: "name = \"b1\"\n\nlistne = \"127.0.0.1:7400\"\n",
			want: []string{`broker.toml:3: unknown key "listne" (did you mean "listen"?)`}},
		{name: "bad value", file: "name = \"b1\"\nhttp-read-timeout = \"20\"\n",
			want: []string{`broker.toml:2: http-read-timeout: time: missing unit in duration "20"`}},
		{name: "table", file: "history = 5\n[http]\n",
			want: []string{`broker.toml:2: tables are not used`}},
		{name: "unknown variable", env: []string{"READYMESH_BROKER_HTTP_READ_TIMOUT=1s"},
			want: []string{`env READYMESH_BROKER_HTTP_READ_TIMOUT: no flag --http-read-timout of broker (did you mean READYMESH_BROKER_HTTP_READ_TIMEOUT?)`}},
		{name: "bad variable", env: []string{"READYMESH_BROKER_HISTORY=many"},
			want: []string{`env READYMESH_BROKER_HISTORY: history: invalid value "many": parse error`}},
	} {
		data := filepath.Join(t.TempDir(), "data")
		args := []string{"run", "--data", data, "--listen", "127.0.0.1:0", "--http", "off", "--stun", "off"}
		if tc.file != "" {
			args = append(args, "--config", writeFile(t, "broker.toml", tc.file))
		}
		out, errOut, code := brokerCmd(t, tc.env, args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; stdout %q, stderr %q", tc.name, code, out, errOut)
		}
		for _, want := range tc.want {
			if !strings.Contains(errOut, "broker run: ") || !strings.Contains(errOut, want) {
				t.Errorf("%s: stderr %q, want %q", tc.name, errOut, want)
			}
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the data directory was made (%v)", tc.name, err)
		}
	}
}

// TestRunServesConfig: broker run serves with the file's values under the
// environment's: the name from the file and the region from the
// environment reach broker.json.
func TestRunServesConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	path := writeFile(t, "broker.toml", "data = \""+data+"\"\nlisten = [\"127.0.0.1:0\"]\nhttp = \"off\"\nstun = \"off\"\nname = \"from-file\"\nregion = \"from-file\"\nlog-level = \"warn\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBrokerMain$", "--", "run")
	cmd.Env = append(mainEnviron(), "READYMESH_BROKER_CONFIG="+path, "READYMESH_BROKER_REGION=eu-west")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	done := make(chan struct{})
	go func() { // reads stdout until the broker exits
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		first <- sc.Text()
		io.Copy(io.Discard, stdout)
	}()
	stop := sync.OnceFunc(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done // before Wait, which closes the pipe
		cmd.Wait()
	})
	defer stop()
	if line := <-first; !strings.HasPrefix(line, "broker ready") {
		stop() // before reading stderr
		t.Fatalf("broker said %q, stderr %s", line, errOut.String())
	}
	b, err := os.ReadFile(filepath.Join(data, "broker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info wire.BrokerInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "from-file" || info.Region != "eu-west" || info.HTTP != "" {
		t.Errorf("broker.json: name %q, region %q, http %q; want from-file, eu-west and none", info.Name, info.Region, info.HTTP)
	}
}
