package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Session channels are the streams a technician opens inside a live
// session: terminal, exec and files (one QUIC stream or WebRTC data channel
// each). They carry frames: a type byte, a 4-byte big-endian length and the
// payload. The first frame from the technician is FrameHeader with the
// channel's JSON request; after it come input and resize frames one way,
// output, notices and the exit status the other.
const (
	FrameHeader = 'h' // technician → agent: ExecRequest, TerminalRequest or FileRequest (JSON)
	FrameInput  = 'i' // technician → agent: input bytes; empty means end of input
	FrameResize = 'r' // technician → agent: 2+2 bytes, rows and columns
	FrameOutput = 'o' // agent → technician: output (a PTY's, or stdout)
	FrameStderr = 'e' // agent → technician: stderr of an exec
	FrameNotice = 'n' // agent → technician: a message for the technician (input refused, …)
	FrameExit   = 'x' // agent → technician: 4-byte exit status; the last frame
	FrameError  = '!' // agent → technician: the channel was refused (Error as JSON); the last frame
	FrameInfo   = 'f' // agent → technician: FileInfo (JSON), before a file's bytes
	FrameDone   = 'd' // technician → agent: a put's end, with the whole file's hex SHA-256
)

// MaxFrame bounds a channel frame's payload.
const MaxFrame = 1 << 20

// ErrFrame marks a malformed channel frame.
var ErrFrame = errors.New("malformed channel frame")

// WriteChannelFrame writes one frame of a session channel.
func WriteChannelFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrame, len(payload))
	}
	if len(payload) > 4096 {
		// Large payloads (file data) go in a second write, not copied.
		var h [5]byte
		h[0] = typ
		binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
		if _, err := w.Write(h[:]); err != nil {
			return err
		}
		_, err := w.Write(payload)
		return err
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// frameChunk is the largest payload allocated whole from its length
// field. A larger one grows fourfold each time its buffer fills, so a
// peer that announces a megabyte on each of its channels and sends five
// bytes makes the agent hold 64 KiB, not a megabyte: 64 KiB or four times
// what it sent, whichever is more. Fourfold rather than twofold growth
// keeps the cost for a real large frame (meshctl cp sends 256 KiB ones) at
// one extra 64 KiB allocation and copy (BenchmarkReadChannelFrame).
const frameChunk = 64 << 10

// ReadChannelFrame reads one frame of a session channel.
func ReadChannelFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: %d-byte payload, limit %d", ErrFrame, n, MaxFrame)
	}
	p, err := readPayload(r, int(n))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return h[0], p, nil
}

// readPayload reads n bytes, growing the buffer only as they arrive.
func readPayload(r io.Reader, n int) ([]byte, error) {
	p := make([]byte, 0, min(n, frameChunk))
	for len(p) < n {
		if len(p) == cap(p) {
			grown := make([]byte, len(p), min(4*cap(p), n))
			copy(grown, p)
			p = grown
		}
		m, err := io.ReadFull(r, p[len(p):cap(p)])
		p = p[:len(p)+m]
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // ended at a chunk's boundary, still short
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Shells a technician may name for exec, terminals and queued jobs.
const (
	// ShellPowerShell is Windows PowerShell (powershell.exe) on Windows,
	// and pwsh where it is installed elsewhere. Scripts run with
	// -NoProfile -NonInteractive and, on Windows, the execution policy
	// bypassed for that one process.
	ShellPowerShell = "powershell"
	// ShellCmd is cmd.exe; Windows only.
	ShellCmd = "cmd"
	// ShellSh is /bin/sh, or sh.exe where one is on a Windows PATH.
	ShellSh = "sh"
)

// ValidShell refuses a shell name other than the three known ones; empty
// (the platform's default) is valid.
func ValidShell(name string) error {
	switch name {
	case "", ShellPowerShell, ShellCmd, ShellSh:
		return nil
	}
	return fmt.Errorf("unknown shell %q: powershell, cmd or sh", name)
}

// ExecRequest asks the agent to run a command.
type ExecRequest struct {
	Argv []string `json:"argv"`
	// Stdin says input frames follow; without it the command's stdin is
	// empty.
	Stdin bool `json:"stdin,omitempty"`
	// Shell, when set, runs Argv joined by spaces as one command line of
	// that shell (ShellPowerShell, ShellCmd or ShellSh) instead of running
	// Argv[0] directly.
	Shell string `json:"shell,omitempty"`
}

// Validate implements the Decode contract.
func (r *ExecRequest) Validate() error {
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return errors.New("exec: no command")
	}
	if len(r.Argv) > 4096 {
		return errors.New("exec: too many arguments")
	}
	return ValidShell(r.Shell)
}

// TerminalRequest opens a terminal.
type TerminalRequest struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
	Term string `json:"term,omitempty"`
	// AllowObservers lets other technicians watch this terminal (read
	// only) by naming this session in Observe.
	AllowObservers bool `json:"allow_observers,omitempty"`
	// Observe joins the terminal of that session as an observer instead
	// of opening a shell.
	Observe string `json:"observe,omitempty"`
	// Shell picks the terminal's shell (ShellPowerShell, ShellCmd or
	// ShellSh); empty means the platform's default: the account's login
	// shell on Linux and macOS, PowerShell on Windows.
	Shell string `json:"shell,omitempty"`
}

// Validate implements the Decode contract.
func (r *TerminalRequest) Validate() error {
	if r.Rows > 1000 || r.Cols > 1000 {
		return errors.New("terminal: size out of range")
	}
	if len(r.Term) > 64 {
		return errors.New("terminal: TERM too long")
	}
	if r.Observe != "" && len(r.Observe) != 32 {
		return errors.New("terminal: observe takes a whole session ID")
	}
	return ValidShell(r.Shell)
}

// FileRequest asks to copy one file. Get reads the agent's file from
// Offset (a resumed copy); put writes it, resuming where a partial copy
// ended, and the agent installs it only when the whole file's SHA-256,
// sent in the closing FrameDone, matches. Both sides hash as the bytes go
// by, so a copy reads and writes each byte once.
type FileRequest struct {
	Op     string `json:"op"` // get or put
	Path   string `json:"path"`
	Offset int64  `json:"offset,omitempty"` // get: where to start
	Size   int64  `json:"size,omitempty"`   // put: the whole file's size
	Mode   uint32 `json:"mode,omitempty"`   // put: permission bits; zero means 0644
}

// Validate implements the Decode contract.
func (r *FileRequest) Validate() error {
	if r.Op != "get" && r.Op != "put" {
		return fmt.Errorf("file op %q is not get or put", r.Op)
	}
	if r.Path == "" || len(r.Path) > 4096 || r.Path[0] != '/' {
		return errors.New("file path must be absolute")
	}
	if r.Offset < 0 || r.Size < 0 {
		return errors.New("negative offset or size")
	}
	return nil
}

// FileInfo answers a FileRequest: for get, the file's size and SHA-256;
// for put, how much of it the agent already has.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Have   int64  `json:"have,omitempty"`
}
