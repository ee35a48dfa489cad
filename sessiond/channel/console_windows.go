package channel

import (
	"fmt"
	"os"
	"sync"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/peer/wire"
)

// console is a shell on a pseudo console (ConPTY): Windows' terminal
// device since Windows 10 1809. The shell writes to a console as it would
// in a window; conhost renders that into VT sequences on a pipe, and input
// written to the other pipe arrives as key presses.
type console struct {
	// Set by startConsole, then read only.
	in    *os.File // input pipe, write end
	out   *os.File // output pipe, read end
	proc  windows.Handle
	pidN  uint32
	group *procGroup
	shell string

	// mu guards hpc, the pseudo console, which closeConsole closes and
	// sets to 0: the technician's frame reader may ask for a resize at
	// any time, also after the terminal closed, and must never hand
	// Windows a freed handle. (spawn reads hpc before anyone else has
	// the console.)
	mu  sync.Mutex
	hpc windows.Handle
}

// conptyResize and conptyClose are the pseudo console calls made after
// creating one. Only tests replace them, to see which handle each call
// gets.
var conptyResize, conptyClose = windows.ResizePseudoConsole, windows.ClosePseudoConsole

// terminalShell picks the program a terminal runs: PowerShell by default,
// cmd when it is missing (the person sees which shell opened), or the one
// asked for.
func terminalShell(_ identity, name string) ([]string, error) {
	switch name {
	case "", wire.ShellPowerShell:
		p, err := shellPath(wire.ShellPowerShell)
		if err == nil {
			return []string{p, "-NoLogo"}, nil
		}
		if name != "" {
			return nil, err
		}
		return terminalShell(identity{}, wire.ShellCmd)
	case wire.ShellCmd:
		p, err := shellPath(name)
		if err != nil {
			return nil, err
		}
		return []string{p, "/d"}, nil
	}
	p, err := shellPath(name)
	if err != nil {
		return nil, err
	}
	return []string{p, "-l"}, nil
}

// startConsole runs argv as id on a new pseudo console of rows by cols.
// The process starts suspended, joins a job object (which holds whatever
// the shell starts) and then runs. TERM is given to the shell's
// environment for programs that read it (ssh, vim from MSYS2).
func (s *Server) startConsole(id identity, argv []string, termName string, rows, cols uint16) (c *console, err error) {
	var inR, inW, outR, outW windows.Handle
	if err := windows.CreatePipe(&inR, &inW, nil, 0); err != nil {
		return nil, fmt.Errorf("pseudo console: input pipe: %w", err)
	}
	if err := windows.CreatePipe(&outR, &outW, nil, 0); err != nil {
		windows.CloseHandle(inR)
		windows.CloseHandle(inW)
		return nil, fmt.Errorf("pseudo console: output pipe: %w", err)
	}
	c = &console{in: os.NewFile(uintptr(inW), "conpty-in"), out: os.NewFile(uintptr(outR), "conpty-out"), shell: argv[0]}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	// The pseudo console keeps its own copies of its ends of the pipes.
	defer windows.CloseHandle(inR)
	defer windows.CloseHandle(outW)
	if err := windows.CreatePseudoConsole(windows.Coord{X: int16(cols), Y: int16(rows)}, inR, outW, 0, &c.hpc); err != nil {
		return nil, fmt.Errorf("pseudo console: %w", err)
	}
	if err := c.spawn(id, argv, termName); err != nil {
		return nil, err
	}
	return c, nil
}

// spawn starts the shell attached to the pseudo console, in a job.
func (c *console) spawn(id identity, argv []string, termName string) error {
	attrs, err := windows.NewProcThreadAttributeList(1)
	if err != nil {
		return fmt.Errorf("pseudo console: attribute list: %w", err)
	}
	defer attrs.Delete()
	// The attribute's value is the HPCON itself, not a pointer to it.
	if err := attrs.Update(windows.PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, *(*unsafe.Pointer)(unsafe.Pointer(&c.hpc)),
		unsafe.Sizeof(c.hpc)); err != nil {
		return fmt.Errorf("pseudo console: attach attribute: %w", err)
	}
	si := windows.StartupInfoEx{ProcThreadAttributeList: attrs.List()}
	si.Cb = uint32(unsafe.Sizeof(si))
	env := id.env
	if env == nil {
		env = os.Environ()
	}
	block := envBlock(append(env, "TERM="+termName))
	cmdLine, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(argv))
	if err != nil {
		return err
	}
	dir, err := windows.UTF16PtrFromString(id.home)
	if err != nil {
		return err
	}
	flags := uint32(windows.EXTENDED_STARTUPINFO_PRESENT | windows.CREATE_UNICODE_ENVIRONMENT | windows.CREATE_SUSPENDED)
	if !ownStdIsConsole() {
		si.Flags |= windows.STARTF_USESTDHANDLES
	}
	var pi windows.ProcessInformation
	if id.token != 0 {
		err = windows.CreateProcessAsUser(id.token, nil, cmdLine, nil, nil, false, flags, &block[0], dir, &si.StartupInfo, &pi)
	} else {
		err = windows.CreateProcess(nil, cmdLine, nil, nil, false, flags, &block[0], dir, &si.StartupInfo, &pi)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	defer windows.CloseHandle(pi.Thread)
	c.proc, c.pidN = pi.Process, pi.ProcessId
	c.group = &procGroup{}
	if c.group.job, err = jobFor(pi.Process); err != nil {
		c.kill()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	if _, err := windows.ResumeThread(pi.Thread); err != nil {
		c.kill()
		return fmt.Errorf("start %s: resume: %w", argv[0], err)
	}
	return nil
}

// ownStdIsConsole reports whether the agent's own standard handles are
// all console handles (it was started in a console window, or on a
// terminal under Wine).
//
// A process started on a pseudo console without STARTF_USESTDHANDLES gets
// the pseudo console's handles in place of its parent's console handles,
// but inherits any other standard handle its parent has (a log file, a
// pipe) and then writes there instead of the terminal. So when the agent's
// handles are not all console handles (a service has none; an agent
// started with its output redirected has files), spawn sets
// STARTF_USESTDHANDLES with no handles and Windows attaches the shell to
// the pseudo console. Wine honours only the first way: its shells get no
// handles at all from the second, which is why the Wine tests run the
// agent on a terminal.
func ownStdIsConsole() bool {
	for _, id := range []uint32{windows.STD_INPUT_HANDLE, windows.STD_OUTPUT_HANDLE, windows.STD_ERROR_HANDLE} {
		h, err := windows.GetStdHandle(id)
		var mode uint32
		if err != nil || h == 0 || windows.GetConsoleMode(h, &mode) != nil {
			return false
		}
	}
	return true
}

// envBlock is env as CreateProcess takes it: NUL-separated UTF-16, ending
// in two NULs.
func envBlock(env []string) []uint16 {
	var b []uint16
	for _, kv := range env {
		b = append(b, utf16.Encode([]rune(kv))...)
		b = append(b, 0)
	}
	return append(b, 0, 0)
}

func (c *console) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *console) Write(p []byte) (int, error) { return c.in.Write(p) }
func (c *console) pid() int                    { return int(c.pidN) }

// resize sets the pseudo console's size; once it is closed, it does
// nothing. rows and cols are at most maxTermSize, so they fit a Coord.
func (c *console) resize(rows, cols uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hpc != 0 {
		conptyResize(c.hpc, windows.Coord{X: int16(cols), Y: int16(rows)})
	}
}

// wait returns the shell's exit code when it exits.
func (c *console) wait() int32 {
	if _, err := windows.WaitForSingleObject(c.proc, windows.INFINITE); err != nil {
		return 127
	}
	var code uint32
	if err := windows.GetExitCodeProcess(c.proc, &code); err != nil {
		return 127
	}
	return int32(code)
}

// hangUp closes the pseudo console, as closing a console window would:
// the processes attached to it get CTRL_CLOSE_EVENT.
func (c *console) hangUp() { c.closeConsole() }

// kill ends every process of the shell's job, and closes the pseudo
// console so that the output pipe reaches its end (it stays open while
// the pseudo console exists, even with nothing attached).
func (c *console) kill() {
	switch {
	case c.group != nil && c.group.job != 0:
		c.group.kill()
	case c.proc != 0:
		windows.TerminateProcess(c.proc, 1)
	}
	c.closeConsole()
}

// closeConsole closes the pseudo console once. It holds mu while it
// does, so a second call returns only after the first has closed it (as
// kill's callers expect), and a resize waits and then finds it gone.
// Holding mu cannot deadlock: closing waits only for the output to be
// drained, which copyOutput does without mu.
func (c *console) closeConsole() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hpc != 0 {
		conptyClose(c.hpc)
		c.hpc = 0
	}
}

// close releases everything; the output reader must have finished or be
// about to (kill ran first).
func (c *console) close() {
	c.closeConsole()
	if c.group != nil {
		c.group.close()
	}
	if c.proc != 0 {
		windows.CloseHandle(c.proc)
		c.proc = 0
	}
	c.in.Close()
	c.out.Close()
}
