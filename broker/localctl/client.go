package localctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// ErrNoServer is returned by Call when nothing listens on the socket: no
// broker runs on the data directory.
var ErrNoServer = errors.New("no broker is listening on the control socket")

// Error is an operation's failure as the broker reported it.
type Error struct {
	Op  string
	Msg string
}

func (e *Error) Error() string { return "broker: " + e.Op + ": " + e.Msg }

// Call asks the broker listening on the socket at path to run op with
// args (nil for none), decodes the result into result (if not nil), and
// copies a streamed reply to stream. A streamed reply when stream is nil
// is an error, as is a stream cut short. ctx bounds the whole call.
func Call(ctx context.Context, path, op string, args, result any, stream io.Writer) error {
	c, err := dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.Close()
	// Cancelling ctx unblocks every read and write at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	err = call(c, op, args, result, stream)
	if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
		return fmt.Errorf("localctl: %s: %w", op, ctxErr)
	}
	return err
}

func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("localctl: %s: %w", path, ErrNoServer)
	}
	if err != nil {
		return nil, fmt.Errorf("localctl: %w", err)
	}
	return c, nil
}

func call(c net.Conn, op string, args, result any, stream io.Writer) error {
	req := request{Op: op}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("localctl: %s: encode arguments: %w", op, err)
		}
		req.Args = raw
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("localctl: %s: %w", op, err)
	}
	r := bufio.NewReaderSize(c, maxFrame+frameHeader)
	if _, err := c.Write(append(raw, '\n')); err != nil {
		// A broker that refuses the connection (busy) writes why and
		// closes it, maybe before the request arrived: the write then
		// fails, and the reason waits unread in the socket.
		c.SetReadDeadline(time.Now().Add(time.Second))
		if h, rerr := readHeader(r); rerr == nil && h.Error != "" {
			return &Error{Op: op, Msg: h.Error}
		}
		return fmt.Errorf("localctl: %s: send: %w", op, err)
	}
	h, err := readHeader(r)
	if err != nil {
		return fmt.Errorf("localctl: %s: %w", op, err)
	}
	if h.Stream {
		if h, err = readStreamed(r, stream); err != nil {
			return fmt.Errorf("localctl: %s: %w", op, err)
		}
	}
	if h.Error != "" {
		return &Error{Op: op, Msg: h.Error}
	}
	if result != nil && len(h.Body) > 0 {
		if err := json.Unmarshal(h.Body, result); err != nil {
			return fmt.Errorf("localctl: %s: decode the result: %w", op, err)
		}
	}
	return nil
}

// readStreamed copies the stream to out and reads the trailer.
func readStreamed(r *bufio.Reader, out io.Writer) (header, error) {
	if out == nil {
		return header{}, errors.New("the broker sent a stream this call does not take")
	}
	if _, err := readStream(r, out); err != nil {
		return header{}, err
	}
	h, err := readHeader(r)
	if err == nil && h.Stream {
		err = errors.New("a trailer announcing another stream")
	}
	return h, err
}

// readHeader reads one header or trailer line.
func readHeader(r *bufio.Reader) (header, error) {
	var h header
	line, err := readLine(r, maxHeader)
	if err != nil {
		return h, fmt.Errorf("read the reply: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("read the reply: %w", err)
	}
	return h, nil
}
