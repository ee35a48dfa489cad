package density

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process a test started: the broker or the TLS server.
// Its stderr goes to a log file in its directory; its stdout is scanned
// for the ready line. stop is idempotent and also runs in tb.Cleanup.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	stdin   io.WriteCloser // closing it tells our own children to exit
	ready   string         // the ready line

	done     chan struct{} // closed when the process has exited
	stopOnce sync.Once
}

// startProc starts bin with args and waits up to limit for a stdout line
// starting with readyPrefix. env is added to this process's environment.
func startProc(tb testing.TB, name, dir, readyPrefix string, limit time.Duration, env []string, bin string, args ...string) (*proc, error) {
	p, stdout, err := launch(tb, name, dir, env, true, bin, args...)
	if err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), readyPrefix) {
				select {
				case ready <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case p.ready = <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready: %s; log:\n%s", name, p.cmd.ProcessState, tailFile(p.logPath, 30))
	case <-time.After(limit):
		p.stop()
		return nil, fmt.Errorf("%s not ready within %s; log:\n%s", name, limit, tailFile(p.logPath, 30))
	}
}

// launch starts bin with args (env added to this process's environment),
// its stderr to a log named name in dir, and stdout to the same log or,
// with pipeStdout, to the pipe it returns. Should this test process die
// without cleaning up, the kernel kills the child rather than leaving it
// holding thousands of connections; stop and tb.Cleanup end it otherwise.
func launch(tb testing.TB, name, dir string, env []string, pipeStdout bool, bin string, args ...string) (*proc, io.Reader, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	var stdout io.Reader
	if pipeStdout {
		cmd.Stdout = nil
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, stdin: stdin, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("%s log (%s):\n%s", name, logPath, tailFile(logPath, 30))
		}
	})
	return p, stdout, nil
}

// stop asks the process to exit (SIGTERM, and EOF on its stdin), and kills
// it if it has not exited within 10 s.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// kill kills the process at once and waits for it. Use it when nothing the
// process would do on the way down matters.
func (p *proc) kill() {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		p.cmd.Process.Kill()
		<-p.done
	})
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d earlier lines", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
