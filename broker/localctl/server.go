package localctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// SocketFile is the control socket's name inside the broker's data
// directory.
const SocketFile = "broker.sock"

// SocketPath is the control socket of the broker whose data directory is
// dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketFile) }

// Defaults for Config's zero values.
const (
	DefaultMaxConns       = 4
	DefaultMaxRequest     = 64 << 10
	DefaultRequestTimeout = 5 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	// Path is the socket's path. It must not be empty. Its directory
	// should be mode 0700.
	Path string
	// MaxConns bounds the connections served at once; a caller beyond
	// them is told the broker is busy. Operations are rare and run by an
	// operator or a cron job, so a few suffice. Zero means 4.
	MaxConns int
	// MaxRequest bounds a request line in bytes. Zero means 64 KiB.
	MaxRequest int
	// RequestTimeout bounds reading a request from the moment its
	// connection is accepted. Zero means 5 s.
	RequestTimeout time.Duration
	// WriteTimeout bounds each write of a reply. A caller that stops
	// reading for longer is cut off, which ends the operation's hold on
	// what it reads (a backup's read transaction). Longer tolerates a
	// caller writing to a slow disk. Zero means 30 s.
	WriteTimeout time.Duration
	// Logger receives refused requests and failures. Nil means discard.
	Logger *slog.Logger
}

// Handler serves one operation. args are the request's arguments as sent
// (nil when it had none); validate them before use. An operation that
// returns a byte stream writes it to stream; one that does not leaves
// stream alone. The result is encoded as the reply's body (nil for none);
// an error is sent to the caller as its message and logged. ctx ends when
// the server shuts down.
type Handler func(ctx context.Context, args json.RawMessage, stream io.Writer) (any, error)

// Server serves the control socket. Make it with Listen, register
// operations with Handle, then call Serve.
type Server struct {
	// Immutable after Listen.
	cfg Config
	log *slog.Logger
	ln  *net.UnixListener
	sem chan struct{} // holds a token per connection served

	// mu guards all following fields.
	mu       sync.Mutex
	handlers map[string]Handler
	conns    map[net.Conn]struct{} // connections being served
	closed   bool                  // set once Serve stops
}

// opName is what an operation's name may be: short, so that a name sent
// by a caller is safe to log.
var opName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// Listen creates the control socket, mode 0600. The caller must hold the
// data directory (the broker holds its store's lock): a socket file left
// by a broker that crashed is removed first.
func Listen(cfg Config) (*Server, error) {
	if cfg.Path == "" {
		return nil, errors.New("localctl: Config.Path is empty")
	}
	setDefaults(&cfg)
	if fi, err := os.Lstat(cfg.Path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("localctl: %s exists and is not a socket", cfg.Path)
		}
		os.Remove(cfg.Path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("localctl: listen on %s (%d bytes; Unix socket paths are limited to about 100): %w", cfg.Path, len(cfg.Path), err)
	}
	if err := os.Chmod(cfg.Path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localctl: %w", err)
	}
	return &Server{cfg: cfg, log: cfg.Logger, ln: ln, sem: make(chan struct{}, cfg.MaxConns),
		handlers: map[string]Handler{}, conns: map[net.Conn]struct{}{}}, nil
}

func setDefaults(cfg *Config) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxRequest <= 0 {
		cfg.MaxRequest = DefaultMaxRequest
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handle registers h as operation op. op must be lower-case letters,
// digits and dashes, starting with a letter, and not registered yet.
func (s *Server) Handle(op string, h Handler) {
	if !opName.MatchString(op) {
		panic(fmt.Sprintf("localctl: bad operation name %q", op))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.handlers[op]; dup {
		panic(fmt.Sprintf("localctl: operation %q registered twice", op))
	}
	s.handlers[op] = h
}

func (s *Server) handler(op string) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[op]
}

// Addr is the socket's path.
func (s *Server) Addr() string { return s.cfg.Path }

// Serve accepts connections until ctx ends, then closes the socket (its
// file is removed) and every connection, waits for the handlers, and
// returns nil; or returns the error that stopped it accepting.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	// Order: stop accepting, cut the connections (a handler writing a
	// stream fails at once), then wait for the handlers to return.
	defer func() {
		s.ln.Close()
		s.closeConns()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors, say: wait a little rather than spin.
			s.log.Warn("control socket: accept", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.admit(ctx, c, &wg)
	}
}

// admit starts serving c, or refuses it: a caller of another account, or
// one beyond MaxConns.
func (s *Server) admit(ctx context.Context, c *net.UnixConn, wg *sync.WaitGroup) {
	if uid, ok := peerAllowed(c); !ok {
		s.log.Warn("control socket: refused a caller of another account", "uid", uid)
		c.Close()
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.log.Warn("control socket: busy, refused a connection", "max_conns", s.cfg.MaxConns)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeHeader(c, header{Error: fmt.Sprintf("busy: %d operations in progress, try again later", s.cfg.MaxConns)})
		c.Close()
		return
	}
	if !s.track(c) {
		<-s.sem
		c.Close()
		return
	}
	wg.Go(func() {
		defer func() { <-s.sem }()
		defer s.untrack(c)
		s.serveConn(ctx, c)
	})
}

// track records c as being served, unless the server has stopped.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// serveConn reads one request, runs its handler and writes the reply.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	c.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	req, err := readRequest(bufio.NewReader(c), s.cfg.MaxRequest)
	w := &replyWriter{c: c, bw: bufio.NewWriterSize(c, maxFrame+frameHeader), timeout: s.cfg.WriteTimeout}
	if err != nil {
		s.log.Warn("control socket: bad request", "err", err)
		w.finish(nil, err)
		return
	}
	h := s.handler(req.Op)
	if h == nil {
		err := fmt.Errorf("unknown operation %q", req.Op)
		s.log.Warn("control socket: bad request", "err", err)
		w.finish(nil, err)
		return
	}
	body, err := s.run(ctx, req, h, w)
	if err != nil {
		s.log.Warn("control socket: operation failed", "op", req.Op, "err", err)
	}
	if err := w.finish(body, err); err != nil {
		s.log.Warn("control socket: reply not delivered", "op", req.Op, "err", err)
	}
}

// run calls h, turning a panic into an error.
func (s *Server) run(ctx context.Context, req request, h Handler, w io.Writer) (body any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control socket: operation panicked", "op", req.Op, "panic", r)
			body, err = nil, errors.New("internal error")
		}
	}()
	return h(ctx, req.Args, w)
}

// request is what a client sends.
type request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// readRequest reads and checks one request line of at most max bytes.
func readRequest(r *bufio.Reader, max int) (request, error) {
	var req request
	line, err := readLine(r, max)
	if err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("request is not JSON of the expected shape: %w", err)
	}
	if dec.More() {
		return req, errors.New("request has data after its JSON object")
	}
	if !opName.MatchString(req.Op) {
		return req, fmt.Errorf("operation name %.64q is not valid", req.Op)
	}
	return req, nil
}

// readLine reads up to and without a newline, at most max bytes with it.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("line ended without a newline after %d bytes: %w", len(line), io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}
