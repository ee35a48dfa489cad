package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/internal/wine"
	"github.com/readymesh/readymesh/peer/wire"
)

// needWine returns a ready Wine prefix, or skips (under
// READYMESH_REQUIRE_NETNS=1, as in CI: fails) saying why there is none.
func needWine(t testing.TB) string {
	t.Helper()
	prefix := wine.DefaultPrefix()
	err := func() error {
		if _, err := wine.Binary(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		return wine.Ensure(ctx, prefix)
	}()
	if err != nil {
		msg := "no Wine to run the Windows agent: " + err.Error()
		if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
			t.Fatal(msg + " (READYMESH_REQUIRE_NETNS=1)")
		}
		t.Skip("skipping: " + msg)
	}
	return prefix
}

// buildWindows builds sessiond.exe and meshctl.exe for windows/amd64 into
// dir and returns sessiond.exe's path.
func buildWindows(t testing.TB, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "sessiond.exe")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "github.com/readymesh/readymesh/sessiond/cmd/sessiond",
		"github.com/readymesh/readymesh/peer/cmd/meshctl")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sessiond.exe: %v\n%s", err, out)
	}
	return exe
}

// winPath is a Linux path as Windows programs under Wine see it (drive Z:
// is the root).
func winPath(p string) string { return "Z:" + strings.ReplaceAll(p, "/", `\`) }

// wineProc is a Windows program running under Wine on a terminal; what
// it writes goes to out.
type wineProc struct {
	out  *logBuffer
	term io.Writer     // its terminal: what is written here is typed
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

// startWine starts exe under Wine. Cleanup kills it.
func startWine(t testing.TB, prefix, name, exe string, args ...string) *wineProc {
	t.Helper()
	return startWineEnv(t, prefix, nil, name, exe, args...)
}

// startWineEnv is startWine with more environment variables.
func startWineEnv(t testing.TB, prefix string, env []string, name, exe string, args ...string) *wineProc {
	t.Helper()
	cmd, err := wine.Command(context.Background(), prefix, exe, args...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env...)
	p := &wineProc{out: newLogBuffer(), done: make(chan struct{})}
	r, err := wine.Start(cmd, p.out)
	if err != nil {
		t.Fatalf("start %s under Wine: %v", name, err)
	}
	p.term = r.Terminal()
	go func() {
		p.err = r.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s under Wine did not exit after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("--- %s under Wine: output tail:\n%s", name, p.out.tail(logTail))
		}
	})
	return p
}

// wait waits up to d for the program to exit and returns how it did.
func (p *wineProc) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
		return nil
	}
}

// startWineAgent builds sessiond.exe, enrols it as name in client acme
// and runs it under Wine.
func startWineAgent(t testing.TB, prefix, base string, admin *tech, name string) (*agent, *wineProc) {
	t.Helper()
	exe := buildWindows(t, base)
	tok := admin.token("acme", 1, time.Hour).Token
	state := filepath.Join(base, name+"-state")
	enrol := startWine(t, prefix, "sessiond.exe enroll", exe, "enroll", "--token", tok, "--name", name,
		"--state", winPath(state))
	if err := enrol.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("sessiond.exe enroll: %v\n%s", err, enrol.out)
	}
	m := enrolledRE.FindStringSubmatch(strings.TrimSpace(enrol.out.String()))
	if m == nil {
		t.Fatalf("sessiond.exe enroll printed %q", enrol.out)
	}
	pc := &agent{t: t, name: name, client: m[2], id: m[3], dir: state, exe: exe}
	run := startWine(t, prefix, "sessiond.exe run", exe, "run", "--state", winPath(state), "--interval", "1h",
		"--session-addr", "127.0.0.1:0")
	return pc, run
}

// TestWindowsAgentUnderWine runs the Windows agent, sessiond.exe, under
// Wine against the Linux broker: it enrols, checks in a Windows snapshot,
// comes up on the WebSocket bridge without UDP (Wine 8 has none) and
// serves relayed sessions: exec (direct and through cmd), a terminal on a
// pseudo console (ConPTY), and queued cmd and PowerShell jobs.
func TestWindowsAgentUnderWine(t *testing.T) {
	needBinaries(t)
	prefix := needWine(t)
	base := testDir(t)
	b := startBroker(t, base, "win", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc, run := startWineAgent(t, prefix, base, admin, "winpc")
	cards := waitOnline(t, admin, 90*time.Second, pc)

	t.Run("card says Windows", func(t *testing.T) {
		c, _ := cardOf(cards, pc.id)
		r := c.Readiness
		if r.OS == nil || r.OS.Family != "windows" || !strings.Contains(r.OS.Name, "Windows") {
			t.Fatalf("card OS %+v, want Windows from the registry", r.OS)
		}
		// Wine has no Windows Update Agent: unknown, never 0 pending.
		if r.UpdatesUnknown == "" {
			t.Errorf("pending updates known under Wine (%d): the Windows Update Agent cannot answer there", len(r.PendingUpdates))
		}
		if tr := c.Reachability.Transport; tr != "websocket" && tr != "tcp" {
			t.Errorf("bridge transport %q: without UDP it must be TCP or WebSocket", tr)
		}
		t.Logf("OS %s %s (%s), updates unknown: %s", r.OS.Name, r.OS.Build, c.Reachability.Transport, r.UpdatesUnknown)
	})
	t.Run("exec", func(t *testing.T) {
		out, errOut, code := admin.meshctlIn("", "exec", pc.full(), "--mode", "elevated", "--", "cmd", "/c", "echo hello-from-windows")
		if strings.TrimSpace(out) != "hello-from-windows" || code != 0 {
			t.Fatalf("exec cmd /c echo: %q %q exit %d", out, errOut, code)
		}
		out, _, code = admin.meshctlIn("", "exec", pc.full(), "--mode", "elevated", "--shell", "cmd", "--", "echo %OS% & exit 3")
		if strings.TrimSpace(out) != "Windows_NT" || code != 3 {
			t.Fatalf("exec --shell cmd: %q exit %d, want Windows_NT and 3", out, code)
		}
		// Interactive: under Wine the agent is not LocalSystem, so it runs
		// as its own account, as on Linux without root.
		out, _, code = admin.meshctlIn("", "exec", pc.full(), "--mode", "interactive", "--shell", "cmd", "--", "echo %USERNAME%")
		if strings.TrimSpace(out) == "" || code != 0 {
			t.Fatalf("interactive exec: %q exit %d", out, code)
		}
	})
	t.Run("terminal on a pseudo console", func(t *testing.T) {
		out, errOut, code := admin.meshctlIn("echo term-%OS%\rexit 5\r", "connect", pc.full(), "--mode", "elevated", "--shell", "cmd")
		if !strings.Contains(out, "term-Windows_NT") || code != 5 {
			t.Fatalf("terminal: exit %d, output %q, stderr %q", code, out, errOut)
		}
		if !strings.Contains(out, "relayed via") {
			t.Errorf("session path: %q, want relayed (no UDP under Wine)", firstLine([]byte(out)))
		}
	})
	t.Run("queued cmd and PowerShell jobs", func(t *testing.T) {
		cmdScript := filepath.Join(base, "fix.cmd")
		os.WriteFile(cmdScript, []byte("@echo off\necho job-%OS%\nexit /b 4\n"), 0o600)
		psScript := filepath.Join(base, "fix.ps1")
		os.WriteFile(psScript, []byte("Write-Output \"ps-$($PSVersionTable.PSVersion)\"\n"), 0o600)
		var cj, pj []wire.Job
		json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", pc.full(), "--mode", "elevated", "--script", cmdScript, "--json")), &cj)
		json.Unmarshal([]byte(admin.ok("queue", "add", "--machine", pc.full(), "--mode", "elevated", "--script", psScript, "--json")), &pj)
		if len(cj) != 1 || len(pj) != 1 || cj[0].Shell != "" && cj[0].Shell != wire.ShellCmd {
			t.Fatalf("queued %+v and %+v", cj, pj)
		}
		finished := func(id string) wire.Job {
			var j wire.Job
			poll(t, 30*time.Second, "job "+id[:8]+" finished", func() (bool, string) {
				json.Unmarshal([]byte(admin.ok("queue", "show", id, "--json")), &j)
				return j.State == "done" || j.State == "failed", j.State
			})
			return j
		}
		j := finished(cj[0].ID)
		if j.ExitCode == nil || *j.ExitCode != 4 || !strings.Contains(j.Output, "job-Windows_NT") {
			t.Errorf("cmd job: %s exit %v output %q error %q", j.State, j.ExitCode, j.Output, j.Error)
		}
		// Wine's powershell.exe is a stub that runs nothing and exits 0: this
		// proves the job reached PowerShell with its .ps1 file, not what
		// PowerShell made of it (sessiond/channel's tests check the flags).
		j = finished(pj[0].ID)
		if j.State != "done" || j.ExitCode == nil || *j.ExitCode != 0 {
			t.Errorf("PowerShell job: %s exit %v error %q", j.State, j.ExitCode, j.Error)
		}
	})
	t.Run("meshctl.exe on a Windows console", func(t *testing.T) {
		// The technician's side on Windows: raw console input and
		// virtual-terminal output, relayed (no UDP under Wine either).
		meshctl := filepath.Join(filepath.Dir(pc.exe), "meshctl.exe")
		env := []string{"READYMESH_HOME=" + winPath(filepath.Join(base, "win-tech"))}
		login := startWineEnv(t, prefix, env, "meshctl.exe login", meshctl, "login", "--credential",
			winPath(filepath.Join(b.dir, "admin.credential")))
		if err := login.wait(t, time.Minute); err != nil {
			t.Fatalf("meshctl.exe login: %v\n%s", err, login.out)
		}
		ex := startWineEnv(t, prefix, env, "meshctl.exe exec", meshctl, "exec", pc.full(), "--mode", "elevated", "--",
			"cmd", "/c", "echo from-a-windows-technician")
		if err := ex.wait(t, time.Minute); err != nil || !strings.Contains(ex.out.String(), "from-a-windows-technician") {
			t.Fatalf("meshctl.exe exec: %v\n%s", err, ex.out)
		}
		con := startWineEnv(t, prefix, env, "meshctl.exe connect", meshctl, "connect", pc.full(), "--mode", "elevated",
			"--shell", "cmd")
		poll(t, 30*time.Second, "the remote prompt", func() (bool, string) {
			return strings.Contains(con.out.String(), ">"), con.out.tail(3)
		})
		io.WriteString(con.term, "echo typed-%OS%\r")
		poll(t, 20*time.Second, "the typed command's output", func() (bool, string) {
			return strings.Contains(con.out.String(), "typed-Windows_NT"), con.out.tail(3)
		})
		io.WriteString(con.term, "exit 6\r")
		err := con.wait(t, 30*time.Second)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 6 {
			t.Fatalf("meshctl.exe connect ended with %v, want the remote exit status 6", err)
		}
	})
	if n := strings.Count(run.out.String(), "no UDP socket for live sessions"); n != 1 {
		t.Errorf("the agent said %d times that it has no UDP, want once", n)
	}
}
