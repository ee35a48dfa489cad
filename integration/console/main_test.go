package console

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/readymesh/readymesh/integration/internal/binaries"
)

// childEnv marks the test binary running inside its namespace.
const childEnv = "READYMESH_CONSOLE_NETNS"

var bins struct {
	broker, sessiond, meshctl string
	// skip, when set, is why the tests cannot run here.
	skip string
}

// binEnv passes the binaries' directory to the test binary in the namespace.
const binEnv = "READYMESH_CONSOLE_BIN"

// TestMain builds the binaries (in the host's namespace, where the module
// cache and proxy are), then runs the tests inside a namespace of their
// own.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		p := binaries.In(os.Getenv(binEnv))
		bins.broker, bins.sessiond, bins.meshctl = p.Broker, p.Sessiond, p.Meshctl
		os.Exit(m.Run())
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		bins.skip = "no /usr/bin/chromium (make deps installs Debian's chromium)"
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "readymesh-console-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
	if _, err := binaries.Build(dir); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
	code, why := runInNamespace(dir)
	os.RemoveAll(dir)
	if why != "" {
		bins.skip = why
		code = m.Run()
	}
	os.Exit(code)
}

// runInNamespace runs this test binary, with its arguments, in a new
// network namespace with only loopback up, and returns its exit code. It
// returns a reason instead when it cannot make a namespace here.
func runInNamespace(binDir string) (int, string) {
	if os.Geteuid() != 0 {
		return 0, "the browser tests need root for a network namespace that keeps WebRTC on loopback"
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return 0, "the browser tests need iproute2's ip for a network namespace (make deps installs it)"
	}
	removeStale(ip)
	ns := "rmconsole-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		return 0, fmt.Sprintf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command(ip, "netns", "del", ns).Run()
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "console: ip link set lo up in %s: %v: %s\n", ns, err, out)
		return 1, ""
	}
	cmd := exec.Command(ip, append([]string{"netns", "exec", ns, os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), childEnv+"="+ns, binEnv+"="+binDir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &ee):
		return max(ee.ExitCode(), 1), ""
	default:
		fmt.Fprintln(os.Stderr, "console: run in namespace:", err)
		return 1, ""
	}
}

// removeStale deletes namespaces of earlier runs whose process is gone
// (a run killed before its deferred cleanup).
func removeStale(ip string) {
	out, _ := exec.Command(ip, "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := strings.CutPrefix(name, "rmconsole-")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(pid); err == nil {
			if syscall.Kill(n, 0) == nil {
				continue
			}
		}
		exec.Command(ip, "netns", "del", name).Run()
	}
}

// needSetup skips (or, under READYMESH_REQUIRE_NETNS=1, fails) a test
// that cannot run here, saying why.
func needSetup(tb testing.TB) {
	tb.Helper()
	if bins.skip == "" {
		return
	}
	if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
		tb.Fatalf("READYMESH_REQUIRE_NETNS=1 but %s", bins.skip)
	}
	tb.Skipf("skipping: %s", bins.skip)
}
