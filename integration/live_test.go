package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// meshctlIn runs meshctl with stdin and returns stdout, stderr and the
// exit status.
func (c *tech) meshctlIn(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.meshctl, args...)
	cmd.Env = append(os.Environ(), "READYMESH_HOME="+c.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("meshctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// TestTerminalAndExec runs commands and a PTY shell on an agent through
// the real binaries, with the agent enforcing each mode: exec streams
// stdout and stderr and returns the exit status; interactive runs as the
// session user and elevated as the agent's; a read-only session runs no
// command and delivers no input, whatever the client sends.
func TestTerminalAndExec(t *testing.T) {
	_, admin, pc := oneAgent(t, "live", "windows-ready.json")

	t.Run("exec streams and exits", func(t *testing.T) {
		out, errOut, code := admin.meshctlIn("", "exec", pc.full(), "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		if out != "out\n" || !strings.Contains(errOut, "err\n") || code != 3 {
			t.Fatalf("stdout %q stderr %q exit %d; want out, err, 3", out, errOut, code)
		}
		out, _, code = admin.meshctlIn("line one\nline two\n", "exec", pc.full(), "-i", "--", "wc", "-l")
		if strings.TrimSpace(out) != "2" || code != 0 {
			t.Fatalf("stdin to exec: %q exit %d", out, code)
		}
	})
	t.Run("interactive runs as the session user, elevated as the agent", func(t *testing.T) {
		me, _ := user.Current()
		wantUser := me.Uid
		if os.Geteuid() == 0 {
			u, err := user.Lookup("nobody")
			if err != nil {
				t.Skipf("skipping: no nobody account to run interactive sessions as (%v)", err)
			}
			wantUser = u.Uid
		}
		out, _, code := admin.meshctlIn("", "exec", pc.full(), "--mode", "interactive", "--", "id", "-u")
		if strings.TrimSpace(out) != wantUser || code != 0 {
			t.Errorf("interactive id -u = %q (exit %d), want %s", out, code, wantUser)
		}
		out, _, code = admin.meshctlIn("", "exec", pc.full(), "--mode", "elevated", "--", "id", "-u")
		if strings.TrimSpace(out) != strconv.Itoa(os.Geteuid()) || code != 0 {
			t.Errorf("elevated id -u = %q (exit %d), want %d", out, code, os.Geteuid())
		}
	})
	t.Run("read-only runs nothing", func(t *testing.T) {
		_, errOut, code := admin.meshctlIn("", "exec", pc.full(), "--mode", "read-only", "--", "touch", "/tmp/readymesh-should-not-exist")
		if code == 0 || !strings.Contains(errOut, "read-only session") {
			t.Fatalf("read-only exec: exit %d, stderr %q", code, errOut)
		}
		if _, err := os.Stat("/tmp/readymesh-should-not-exist"); err == nil {
			os.Remove("/tmp/readymesh-should-not-exist")
			t.Fatal("a read-only session ran a command")
		}
	})
	t.Run("terminal", func(t *testing.T) {
		out, errOut, code := admin.meshctlIn("sleep 313 &\necho hello-$((40+2))\nexit 7\n", "connect", pc.full(), "--mode", "interactive")
		if !strings.Contains(out, "hello-42") || code != 7 {
			t.Fatalf("terminal: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// The background job the session left does not outlive it.
		poll(t, 5*time.Second, "the session's background job ended", func() (bool, string) {
			ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, m := range ms {
				if raw, _ := os.ReadFile(m); strings.Contains(string(raw), "sleep\x00313") {
					return false, m
				}
			}
			return true, ""
		})
	})
	t.Run("read-only terminal delivers no input", func(t *testing.T) {
		out, errOut, _ := admin.meshctlIn("echo sho''uld-not-run\n", "connect", pc.full(), "--mode", "read-only")
		if !strings.Contains(errOut, "input refused: this session is read-only") {
			t.Errorf("no refusal notice: stderr %q", errOut)
		}
		if strings.Contains(out, "should-not-run") {
			t.Errorf("read-only input reached the shell: %q", out)
		}
	})
	t.Run("input pause", func(t *testing.T) {
		sessiond := func(op string) {
			if r := runCmd(t, cmdTimeout, nil, bins.sessiond, op, "--state", pc.dir); r.err != nil {
				t.Fatalf("sessiond %s: %v", op, r)
			}
		}
		hold := startProc(t, "meshctl connect (held)", []string{"READYMESH_HOME=" + admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0"},
			bins.meshctl, "connect", pc.full(), "--mode", "interactive", "--hold", "20s")
		hold.waitOutput(t, "session ", 20*time.Second)
		sessiond("pause-input")
		_, errOut, code := admin.meshctlIn("", "exec", pc.full(), "--", "true")
		if code == 0 || !strings.Contains(errOut, "paused remote input") {
			t.Errorf("exec while paused: exit %d, stderr %q", code, errOut)
		}
		out, errOut, _ := admin.meshctlIn("echo pau''sed-input-ran\n", "connect", pc.full(), "--mode", "interactive")
		if strings.Contains(out, "paused-input-ran") || !strings.Contains(errOut, "paused remote input") {
			t.Errorf("terminal while paused: stdout %q stderr %q", out, errOut)
		}
		poll(t, 10*time.Second, "card shows input paused", func() (bool, string) {
			c := admin.show(pc.full())
			return c.Session != nil && c.Session.InputPaused, fmt.Sprintf("%+v", c.Session)
		})
		// The session part carries the live signals of the same heartbeat
		// as the reachability part: busy is load per core at or above 0.9.
		c := admin.show(pc.full())
		if r := c.Reachability; r.Load1 == nil || r.UserPresent == nil ||
			c.Session.Busy != (*r.Load1 >= 0.9) || c.Session.UserPresent != *r.UserPresent {
			t.Errorf("session signals %+v against reachability %+v", *c.Session, r)
		}
		sessiond("resume-input")
		if out, _, code := admin.meshctlIn("", "exec", pc.full(), "--", "echo", "resumed"); out != "resumed\n" || code != 0 {
			t.Errorf("exec after resume: %q exit %d", out, code)
		}
		poll(t, 10*time.Second, "card shows input resumed", func() (bool, string) {
			c := admin.show(pc.full())
			return c.Session != nil && !c.Session.InputPaused, fmt.Sprintf("%+v", c.Session)
		})
		hold.signal(t, 15)
		hold.wait(t, exitTimeout)
	})
}

// TestCopyFiles copies files both ways through the real binaries: SHA-256
// checked end to end, resumed from a partial copy, a corrupted partial
// copy refused without replacing the file, and writes refused to a
// read-only session.
func TestCopyFiles(t *testing.T) {
	base, admin, pc := oneAgent(t, "cp", "windows-ready.json")

	// The interactive session user must reach and write this directory
	// (the test's own temporary directory is closed to other users).
	open, err := os.MkdirTemp("", "readymesh-cp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	os.Chmod(open, 0o755)
	remoteDir := filepath.Join(open, "remote")
	os.MkdirAll(remoteDir, 0o777)
	os.Chmod(remoteDir, 0o777)
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	local := filepath.Join(base, "payload.bin")
	os.WriteFile(local, data, 0o640)
	remote := filepath.Join(remoteDir, "payload.bin")

	out := admin.ok("cp", local, pc.full()+":"+remote)
	if got, err := os.ReadFile(remote); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("put: %v; %q", err, out)
	}
	back := filepath.Join(base, "back.bin")
	admin.ok("cp", pc.full()+":"+remote, back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
		t.Fatal("get: content differs")
	}
	t.Logf("%s", strings.TrimSpace(out))

	// Resume a fetch from a partial local copy: only the rest moves.
	resumed := filepath.Join(base, "resumed.bin")
	os.WriteFile(resumed+".readymesh-partial", data[:1<<20], 0o600)
	out = admin.ok("cp", pc.full()+":"+remote, resumed)
	if got, _ := os.ReadFile(resumed); !bytes.Equal(got, data) || !strings.Contains(out, "copied 2.0 MiB") {
		t.Fatalf("resumed get: %q", out)
	}

	// A corrupted partial copy on the agent: the checksum catches it, the
	// original stays, and the next run starts clean.
	bad := make([]byte, 1<<20)
	os.WriteFile(remote+".readymesh-partial", bad, 0o600)
	if os.Geteuid() == 0 { // as an interrupted copy by the session user left it
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			os.Chown(remote+".readymesh-partial", uid, gid)
		}
	}
	os.WriteFile(local, append(append([]byte(nil), data...), 'x'), 0o640)
	if msg := admin.fails("cp", local, pc.full()+":"+remote); !strings.Contains(msg, "checksum mismatch") {
		t.Errorf("corrupted resume: %q", msg)
	}
	if got, _ := os.ReadFile(remote); !bytes.Equal(got, data) {
		t.Error("a failed copy replaced the file")
	}
	admin.ok("cp", local, pc.full()+":"+remote)
	if got, _ := os.ReadFile(remote); len(got) != len(data)+1 {
		t.Error("the retried copy did not land")
	}

	// An interactive copy has the session user's file rights, not the
	// agent's: a planted symlink is not written through, a file in a
	// directory the user cannot enter is not read, a FIFO does not hang.
	if os.Geteuid() == 0 {
		victim := filepath.Join(base, "victim")
		os.WriteFile(victim, []byte("root's"), 0o600)
		os.Symlink(victim, filepath.Join(remoteDir, "x.readymesh-partial"))
		if msg := admin.fails("cp", local, pc.full()+":"+filepath.Join(remoteDir, "x")); msg == "" {
			t.Error("no error for a symlinked partial file")
		}
		if got, _ := os.ReadFile(victim); string(got) != "root's" {
			t.Errorf("a copy wrote through a planted symlink: %q", got)
		}
		if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
			t.Errorf("a copy changed a root file's mode to %v", fi.Mode().Perm())
		}
		private := filepath.Join(base, "private")
		os.Mkdir(private, 0o700)
		os.WriteFile(filepath.Join(private, "secret"), []byte("s"), 0o644)
		if msg := admin.fails("cp", pc.full()+":"+filepath.Join(private, "secret"), filepath.Join(base, "stolen")); !strings.Contains(msg, "permission denied") {
			t.Errorf("read through a closed directory: %q", msg)
		}
	}
	fifo := filepath.Join(remoteDir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err == nil {
		if msg := admin.fails("cp", pc.full()+":"+fifo, filepath.Join(base, "fifo-copy")); !strings.Contains(msg, "not a regular file") {
			t.Errorf("fetching a FIFO: %q", msg)
		}
	}

	if msg := admin.fails("cp", "--mode", "read-only", local, pc.full()+":"+remote+".ro"); !strings.Contains(msg, "read-only session") {
		t.Errorf("read-only put: %q", msg)
	}
	if _, err := os.Stat(remote + ".ro"); err == nil {
		t.Error("a read-only session wrote a file")
	}
}

// TestTranscriptAndHistory: a terminal session is recorded as asciicast
// v2 and its transcript reaches the broker; an exec'd command and its exit
// status, and both sessions, are in the machine's history after the next
// check-in, readable without connecting.
func TestTranscriptAndHistory(t *testing.T) {
	_, admin, pc := oneAgent(t, "rec", "linux-ready.json")

	if out, _, code := admin.meshctlIn("echo transcript-$((6*7))\nexit\n", "connect", pc.full(), "--mode", "interactive"); code != 0 || !strings.Contains(out, "transcript-42") {
		t.Fatalf("terminal: %q exit %d", out, code)
	}
	if _, _, code := admin.meshctlIn("", "exec", pc.full(), "--", "sh", "-c", "exit 4"); code != 4 {
		t.Fatalf("exec exit %d", code)
	}
	type hist struct {
		Sessions []wire.SessionRecord `json:"sessions"`
		Commands []wire.CommandRecord `json:"commands"`
	}
	var h hist
	poll(t, 15*time.Second, "history after a check-in", func() (bool, string) {
		runCmd(t, cmdTimeout, nil, bins.sessiond, "checkin", "--state", pc.dir)
		json.Unmarshal([]byte(admin.ok("history", pc.full(), "--json")), &h)
		return len(h.Sessions) >= 2 && len(h.Commands) >= 1, fmt.Sprintf("%+v", h)
	})
	c := h.Commands[len(h.Commands)-1]
	if c.Command != "sh -c 'exit 4'" || c.ExitCode != 4 {
		t.Errorf("command history: %+v", c)
	}
	for _, s := range h.Sessions {
		if s.Technician != "admin" || s.Mode != wire.ModeInteractive || !strings.HasPrefix(s.Path, wire.PathDirectQUIC) || !s.End.After(s.Start) {
			t.Errorf("session history: %+v", s)
		}
	}
	var cast string
	poll(t, 15*time.Second, "the transcript at the broker", func() (bool, string) {
		for _, s := range h.Sessions {
			if r := admin.run("transcript", s.ID); r.err == nil {
				cast = r.stdout
				return true, ""
			}
		}
		return false, "no transcript yet"
	})
	lines := strings.Split(strings.TrimSpace(cast), "\n")
	var hdr struct {
		Version       int `json:"version"`
		Width, Height int
	}
	if err := json.Unmarshal([]byte(lines[0]), &hdr); err != nil || hdr.Version != 2 || hdr.Width == 0 || hdr.Height == 0 {
		t.Fatalf("asciicast header %q: %v", lines[0], err)
	}
	var text strings.Builder
	for _, l := range lines[1:] {
		var ev []any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("asciicast event %q: %v", l, err)
		}
		if _, ok := ev[0].(float64); !ok || ev[1] != "o" {
			t.Fatalf("asciicast event %q: want [seconds, \"o\", text] (input is not recorded by default)", l)
		}
		text.WriteString(ev[2].(string))
	}
	if !strings.Contains(text.String(), "transcript-42") {
		t.Errorf("transcript lacks the session's output: %q", text.String())
	}
}

// TestObserver: a technician who allows observers shares the terminal; a
// second technician (read-only) watches it, sees the first one's output,
// and cannot type; a terminal that does not allow observers refuses them.
func TestObserver(t *testing.T) {
	base, admin, pc := oneAgent(t, "obs", "linux-ready.json")
	var tr wire.TechnicianResult
	json.Unmarshal([]byte(admin.ok("technicians", "add", "watcher", "--clients", "acme", "--modes", "read-only", "--json")), &tr)
	watcher := newTech(t, base, "watcher")
	watcher.ok("login", "--credential", tr.LoginToken)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := exec.CommandContext(ctx, bins.meshctl, "connect", pc.full(), "--mode", "interactive", "--allow-observers")
	owner.Env = append(os.Environ(), "READYMESH_HOME="+admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	in, _ := owner.StdinPipe()
	ownerOut := newLogBuffer()
	owner.Stdout, owner.Stderr = ownerOut, ownerOut
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer owner.Process.Kill()
	var session string
	poll(t, 20*time.Second, "the owner's session ID", func() (bool, string) {
		f := strings.Fields(ownerOut.String())
		if len(f) > 1 && f[0] == "session" && len(f[1]) == 32 {
			session = f[1]
		}
		return session != "", ownerOut.String()
	})

	obsCmd := exec.CommandContext(ctx, bins.meshctl, "connect", pc.full(), "--observe", session)
	obsCmd.Env = append(os.Environ(), "READYMESH_HOME="+watcher.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	obsIn, _ := obsCmd.StdinPipe()
	obsOut, obsErr := newLogBuffer(), newLogBuffer()
	obsCmd.Stdout, obsCmd.Stderr = obsOut, obsErr
	if err := obsCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer obsCmd.Process.Kill()
	poll(t, 20*time.Second, "the observer joined", func() (bool, string) {
		return strings.Contains(obsErr.String(), "observing session"), obsErr.String()
	})
	obsIn.Write([]byte("echo observer-typ''ed\n"))
	in.Write([]byte("echo owner-$((1+1))\n"))
	poll(t, 20*time.Second, "the observer sees the owner's output", func() (bool, string) {
		return strings.Contains(obsOut.String(), "owner-2"), obsOut.String()
	})
	poll(t, 10*time.Second, "the observer's typing refused", func() (bool, string) {
		return strings.Contains(obsErr.String(), "observers cannot type"), obsErr.String()
	})
	poll(t, 10*time.Second, "the card lists both technicians", func() (bool, string) {
		c := admin.show(pc.full())
		return c.Session != nil && len(c.Session.Technicians) == 2, fmt.Sprintf("%+v", c.Session)
	})
	in.Write([]byte("exit\n"))
	owner.Wait()
	obsIn.Close()
	if err := obsCmd.Wait(); err != nil {
		t.Errorf("observer after the terminal closed: %v; %s", err, obsErr.String())
	}
	if strings.Contains(ownerOut.String(), "observer-typed") {
		t.Error("the observer's input reached the terminal")
	}

	// A terminal that does not allow observers refuses them.
	if _, errOut, code := watcher.meshctlIn("", "connect", pc.full(), "--observe", session); code == 0 || !strings.Contains(errOut, "no terminal is open") {
		t.Errorf("observing a closed terminal: exit %d, %q", code, errOut)
	}
	private := exec.CommandContext(ctx, bins.meshctl, "connect", pc.full(), "--mode", "interactive")
	private.Env = append(os.Environ(), "READYMESH_HOME="+admin.home, "READYMESH_SESSION_ADDR=127.0.0.1:0")
	pin, _ := private.StdinPipe()
	private.Stdout = newLogBuffer()
	if err := private.Start(); err != nil {
		t.Fatal(err)
	}
	defer private.Process.Kill()
	var id string
	poll(t, 20*time.Second, "the private terminal's session", func() (bool, string) {
		r := runCmd(t, cmdTimeout, nil, bins.sessiond, "status", "--state", pc.dir, "--json")
		var st struct {
			Sessions []wire.SessionInfo `json:"sessions"`
		}
		json.Unmarshal([]byte(r.stdout), &st)
		if len(st.Sessions) == 1 {
			id = st.Sessions[0].Session
		}
		return id != "", r.stdout
	})
	// The terminal channel opens just after the session: until then the
	// answer is "no terminal is open".
	poll(t, 10*time.Second, "a private terminal refuses observers", func() (bool, string) {
		_, errOut, code := watcher.meshctlIn("", "connect", pc.full(), "--observe", id)
		return code != 0 && strings.Contains(errOut, "does not allow observers"), errOut
	})
	pin.Write([]byte("exit\n"))
	private.Wait()
}

// oneAgent starts a broker named name, logs its admin in, creates client
// acme and runs one agent pc-01 playing fixture, online. extra are more
// sessiond run flags.
func oneAgent(t *testing.T, name, fixture string, extra ...string) (string, *tech, *agent) {
	t.Helper()
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, name, 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	pc := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "pc-01", fixture)
	pc.extra = extra
	pc.start()
	waitOnline(t, admin, 20*time.Second, pc)
	return base, admin, pc
}
