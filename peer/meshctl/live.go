package meshctl

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// ExitError carries a remote command's exit status out of meshctl: the
// command line exits with it, printing nothing more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// execCmd runs a command on the machine: meshctl exec MACHINE [flags] -- CMD [ARGS…].
func (e *env) execCmd(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	mode := fs.String("mode", wire.ModeInteractive, "session `mode`: interactive or elevated (read-only sessions run no commands)")
	transport := fs.String("transport", wire.TransportAuto, "auto, quic, relay")
	stdin := fs.Bool("i", false, "send this command's standard input to the remote command")
	shell := fs.String("shell", "", "run COMMAND [ARGS…], joined by spaces, as one command line of powershell, cmd or sh")
	var argv []string
	for i, a := range args {
		if a == "--" {
			args, argv = args[:i], args[i+1:]
			break
		}
	}
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		return fmt.Errorf("%w: exec MACHINE [flags] -- COMMAND [ARGS…]", ErrUsage)
	}
	if err := wire.ValidShell(*shell); err != nil {
		return fmt.Errorf("%w: --shell: %v", ErrUsage, err)
	}
	s, _, err := e.openSession(pos[0], *mode, *transport)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Open(e.ctx, "exec")
	if err != nil {
		return err
	}
	defer st.Close()
	hdr, _ := json.Marshal(wire.ExecRequest{Argv: argv, Stdin: *stdin, Shell: *shell})
	if err := wire.WriteChannelFrame(st, wire.FrameHeader, hdr); err != nil {
		return err
	}
	if *stdin {
		go pumpInput(st, os.Stdin)
	}
	return e.readLive(st, os.Stderr, nil)
}

// pumpInput sends r as input frames, and an empty frame at its end.
func pumpInput(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if wire.WriteChannelFrame(w, wire.FrameInput, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			wire.WriteChannelFrame(w, wire.FrameInput, nil)
			return
		}
	}
}

// readLive copies a live channel's output until its exit status, which it
// returns as an ExitError when not zero.
func (e *env) readLive(r io.Reader, stderr io.Writer, raw *term.State) error {
	for {
		typ, p, err := wire.ReadChannelFrame(r)
		if err != nil {
			return fmt.Errorf("the session ended before the command did: %w", err)
		}
		switch typ {
		case wire.FrameOutput:
			e.out.Write(p)
		case wire.FrameStderr:
			stderr.Write(p)
		case wire.FrameNotice:
			nl := "\n"
			if raw != nil {
				nl = "\r\n"
			}
			fmt.Fprintf(stderr, "%smeshctl: %s%s", nl, p, nl)
		case wire.FrameError:
			var we wire.Error
			json.Unmarshal(p, &we)
			return &we
		case wire.FrameExit:
			if len(p) != 4 {
				return errors.New("malformed exit status")
			}
			if code := int32(binary.BigEndian.Uint32(p)); code != 0 {
				return &ExitError{Code: int(code)}
			}
			return nil
		}
	}
}

// terminal opens a terminal on the session: the local terminal in raw mode
// when stdin is one, else stdin and stdout as they are (for scripts).
func (e *env) terminal(s *mesh.Session, req wire.TerminalRequest) error {
	st, err := s.Open(e.ctx, "terminal")
	if err != nil {
		return err
	}
	defer st.Close()
	req.Term = os.Getenv("TERM")
	con, err := openConsole(os.Stdin, os.Stdout)
	if err != nil {
		return err
	}
	defer con.restore()
	var raw *term.State
	if con != nil {
		raw = con.state
		w, h := con.size()
		req.Cols, req.Rows = uint16(w), uint16(h)
		resized, stopResize := con.watchResize()
		defer stopResize()
		go func() {
			for sz := range resized {
				var b [4]byte
				binary.BigEndian.PutUint16(b[:], uint16(sz[1]))
				binary.BigEndian.PutUint16(b[2:], uint16(sz[0]))
				wire.WriteChannelFrame(st, wire.FrameResize, b[:])
			}
		}()
	}
	hdr, _ := json.Marshal(req)
	if err := wire.WriteChannelFrame(st, wire.FrameHeader, hdr); err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 && wire.WriteChannelFrame(st, wire.FrameInput, buf[:n]) != nil {
				return
			}
			if err != nil {
				if raw == nil {
					// End of a piped script: end the shell as Ctrl-D would,
					// and if it does not end (a read-only session refuses
					// even that), close the terminal.
					wire.WriteChannelFrame(st, wire.FrameInput, []byte{4})
					select {
					case <-time.After(3 * time.Second):
						st.CancelWrite(0)
						st.CancelRead(0)
					case <-e.ctx.Done():
					}
				}
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.Done():
		}
		st.Close()
	}()
	return e.readLive(st, os.Stderr, raw)
}

// consentCmd sets a machine's consent policy (admin).
func (e *env) consentCmd(args []string) error {
	fs := flag.NewFlagSet("consent", flag.ContinueOnError)
	policy := fs.String("policy", "", "never, window (one approval covers --window) or session (every session asks)")
	window := fs.Duration("window", 0, "how long one approval lasts under the window policy (default: the agent's, 8h)")
	pos, err := parse(fs, args, "MACHINE")
	if err != nil {
		return err
	}
	a := wire.ConsentPolicyArgs{Machine: pos[0], Policy: *policy, WindowSec: int64(window.Seconds())}
	var r map[string]string
	if err := e.do(wire.OpConsentSet, a, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "consent policy of %s is now %s\n", r["machine"], r["policy"])
	return nil
}
