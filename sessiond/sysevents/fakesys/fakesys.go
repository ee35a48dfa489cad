//go:build linux

package fakesys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// DelayMax is how long Sleep and WaitReleased wait for delay inhibitors,
// as logind's default InhibitDelayMaxSec.
const DelayMax = 5 * time.Second

// ErrDelayExpired is returned by Sleep and WaitReleased when a delay
// inhibitor was still held after DelayMax: logind would have gone on
// without the code under test.
var ErrDelayExpired = errors.New("fakesys: a delay inhibitor was still held after the maximum delay")

// Bus is a private system bus with fake logind and NetworkManager on it.
// Its methods may be called from any goroutine.
type Bus struct {
	t    testing.TB
	dir  string // holds the config and the socket
	conf string
	sock string

	mu         sync.Mutex
	daemon     *daemon    // nil while the bus is stopped
	logind     *dbus.Conn // the fake logind's connection; nil while it is off the bus
	nm         *dbus.Conn // the fake NetworkManager's; nil while off
	loginProps propSetter // logind's properties while it is on the bus
	nmProps    propSetter // NetworkManager's, likewise
	wantLogind bool       // logind should be on the bus (Restart brings it back)
	wantNM     bool       // likewise NetworkManager
	lid        bool       // LidClosed
	scheduled  schedule   // ScheduledShutdown
	metered    uint32     // NMMetered
	oldLogind  bool       // no PrepareForShutdownWithMetadata, as before systemd 255
	inhibitors map[*inhibitor]struct{}
	taken      int           // inhibitors handed out in all
	changed    chan struct{} // closed and replaced when inhibitors come or go
	prepared   time.Time     // when the last PrepareForSleep/Shutdown(true) went out
	readers    sync.WaitGroup
}

// Inhibitor is one lock taken through the fake logind's Inhibit.
type Inhibitor struct {
	What, Who, Why, Mode string
}

// inhibitor is a held lock: the read end of the pipe whose write end went
// to the caller; end-of-file means the caller closed it.
type inhibitor struct {
	Inhibitor
	r *os.File
}

// schedule is logind's ScheduledShutdown property, (st): the kind and
// when, in microseconds since the epoch.
type schedule struct {
	Kind string
	Usec uint64
}

// Start runs dbus-daemon on a private socket with fake logind and
// NetworkManager on it (lid open, no shutdown scheduled, connection not
// metered), and stops it all when the test ends. It fails the test (or
// skips it, with the reason, when READYMESH_REQUIRE_NETNS is unset) if
// dbus-daemon is not installed.
func Start(t testing.TB) *Bus {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		need(t, "fakesys: dbus-daemon is not installed (apt-get install -y dbus-daemon): "+err.Error())
	}
	// A short directory of its own: a socket path must fit in 108 bytes,
	// and test names make t.TempDir long.
	dir, err := os.MkdirTemp("", "fakesys-")
	if err != nil {
		t.Fatalf("fakesys: %v", err)
	}
	b := &Bus{
		t: t, dir: dir,
		conf:       filepath.Join(dir, "bus.conf"),
		sock:       filepath.Join(dir, "system_bus_socket"),
		wantLogind: true, wantNM: true,
		metered:    nmMeteredNo,
		inhibitors: map[*inhibitor]struct{}{},
		changed:    make(chan struct{}),
	}
	t.Cleanup(b.close)
	if err := os.WriteFile(b.conf, []byte(fmt.Sprintf(busConfig, b.Address())), 0o600); err != nil {
		t.Fatalf("fakesys: %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.startLocked(bin); err != nil {
		t.Fatalf("fakesys: %v", err)
	}
	return b
}

// need fails or skips t for a missing tool, per the project's rule.
func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("READYMESH_REQUIRE_NETNS") == "1" {
		t.Fatal(msg + " (READYMESH_REQUIRE_NETNS=1)")
	}
	t.Skip(msg)
}

// busConfig lets every local user connect, own any name and send
// anything, as a test bus should. dbus-daemon wants a listen element even
// when --address, which wins, names the same socket.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`

// Address is the bus's address, for sysevents.Config.Bus or
// DBUS_SYSTEM_BUS_ADDRESS. It stays the same across Restart.
func (b *Bus) Address() string { return "unix:path=" + b.sock }

// daemon is a running dbus-daemon.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited and its output is read
}

// startLocked starts dbus-daemon and the services that should be on it.
func (b *Bus) startLocked(bin string) error {
	os.Remove(b.sock)
	cmd := exec.Command(bin, "--config-file="+b.conf, "--address="+b.Address(), "--nofork", "--nopidfile", "--nosyslog", "--print-address")
	cmd.Stderr = logWriter{b.t, "dbus-daemon: "}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dbus-daemon: %w", err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			ready <- sc.Text()
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	select {
	case <-ready:
	case <-d.done:
		return fmt.Errorf("dbus-daemon exited before printing its address: %v", cmd.ProcessState)
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-d.done
		return errors.New("dbus-daemon printed no address within 10 s")
	}
	b.daemon = d
	if b.wantLogind {
		if err := b.startLogindLocked(); err != nil {
			return err
		}
	}
	if b.wantNM {
		if err := b.startNMLocked(); err != nil {
			return err
		}
	}
	return nil
}

// stopLocked stops the services' connections and the daemon.
func (b *Bus) stopLocked() {
	b.stopLogindLocked()
	b.stopNMLocked()
	if b.daemon != nil {
		b.daemon.cmd.Process.Kill()
		<-b.daemon.done
		b.daemon = nil
	}
}

// close is the test's cleanup: everything stops, every pipe closes, and
// the directory goes.
func (b *Bus) close() {
	b.mu.Lock()
	b.stopLocked()
	for in := range b.inhibitors {
		in.r.Close()
	}
	b.mu.Unlock()
	b.readers.Wait()
	os.RemoveAll(b.dir)
}

// Stop stops the bus: clients lose their connection, and dialling it
// fails until Restart.
func (b *Bus) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
}

// Restart stops the bus if it runs and starts it again at the same
// address, with the services that were on it (their state kept).
// Inhibitors taken before stay held until their holders close them, as
// logind's do when only the bus restarts.
func (b *Bus) Restart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
	bin, err := exec.LookPath("dbus-daemon")
	if err == nil {
		err = b.startLocked(bin)
	}
	if err != nil {
		b.t.Errorf("fakesys: restarting the bus: %v", err)
	}
}

// connectLocked connects a service to the bus and takes its name, after
// export has published its objects (so that a client that sees the name
// appear can read them at once).
func (b *Bus) connectLocked(name string, export func(*dbus.Conn) error) (*dbus.Conn, error) {
	if b.daemon == nil {
		return nil, errors.New("the bus is stopped")
	}
	conn, err := dbus.Connect(b.Address())
	if err != nil {
		return nil, fmt.Errorf("connecting %s: %w", name, err)
	}
	if err := export(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("exporting %s: %w", name, err)
	}
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err == nil && reply != dbus.RequestNameReplyPrimaryOwner {
		err = fmt.Errorf("reply %v", reply)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("taking the name %s: %w", name, err)
	}
	return conn, nil
}

// logWriter writes a process's output to the test log, line by line.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	for line := range strings.Lines(string(p)) {
		if line = strings.TrimSpace(line); line != "" {
			w.t.Log(w.prefix + line)
		}
	}
	return len(p), nil
}
