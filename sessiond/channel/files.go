package channel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// files serves one copy. Reads are allowed in every mode (a read-only
// technician may collect a log); writes need an interactive or elevated
// grant. A put lands in PATH.readymesh-partial and is renamed into place
// only when the whole file's SHA-256 matches, so an interrupted copy
// resumes and a corrupted one never replaces the original.
//
// The agent runs as root, but a copy for a session that runs as another
// account is done with that account's filesystem rights: the goroutine
// locks its OS thread, sets the thread's filesystem IDs and groups to the
// account's (setfsuid, setfsgid, setgroups act on one thread only), and
// never unlocks it, so the thread dies with the copy. The kernel then
// checks every path component, sticky directories and symlinks as it
// would for the account itself, and new files belong to it.
func (s *Server) files(ctx context.Context, ch *mesh.Channel) {
	var req wire.FileRequest
	if err := header(ch.Stream, &req); err != nil {
		refuse(ch.Stream, wire.CodeBadRequest, err.Error())
		return
	}
	log := s.log.With("session", ch.Session.Session, "technician", ch.Session.Technician, "mode", ch.Grant.Mode,
		"op", req.Op, "path", req.Path)
	id, err := s.account(ch.Grant.Mode)
	if err != nil {
		refuse(ch.Stream, wire.CodeForbidden, err.Error())
		return
	}
	defer id.release()
	req.Path = filepath.Clean(req.Path)
	switch {
	case req.Op == "put" && ch.Grant.Mode == wire.ModeReadOnly:
		err = &wire.Error{Code: wire.CodeForbidden, Message: "read-only session: files are not written; ask for an interactive session"}
	case req.Op == "put" && s.InputPaused():
		err = &wire.Error{Code: wire.CodeForbidden, Message: pausedNotice}
	default:
		err = s.asAccount(id, func() error {
			if req.Op == "get" {
				return s.get(ch.Stream, req)
			}
			return s.put(ch.Stream, req)
		})
	}
	if err != nil {
		log.Warn("file copy refused or failed", "err", err)
		we, ok := err.(*wire.Error)
		if !ok {
			we = &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}
		}
		refuse(ch.Stream, we.Code, we.Message)
		return
	}
	log.Info("file copied", "as", id.name)
	exitFrame(ch.Stream, 0)
}

// openRegular opens path for reading without blocking on a FIFO or device,
// and refuses anything but a regular file.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, fi, nil
}

func (s *Server) get(w io.Writer, req wire.FileRequest) error {
	f, fi, err := openRegular(req.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Hash and send the same bytes: the size seen now, even if the file
	// grows meanwhile (a log being written).
	size := fi.Size()
	h := sha256.New()
	if _, err := io.CopyN(h, f, size); err != nil {
		return err
	}
	info, _ := json.Marshal(wire.FileInfo{Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	if err := wire.WriteChannelFrame(w, wire.FrameInfo, info); err != nil {
		return err
	}
	if req.Offset > size {
		return fmt.Errorf("offset %d is past the file's end (%d bytes)", req.Offset, size)
	}
	if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
		return err
	}
	_, err = io.CopyN(frameWriter{w: &lockedWriter{w: w}, typ: wire.FrameOutput}, f, size-req.Offset)
	return err
}

// put receives a file into PATH.readymesh-partial, resuming a partial
// copy, and installs it only when the whole file's SHA-256 matches.
func (s *Server) put(rw io.ReadWriter, req wire.FileRequest) error {
	partial := req.Path + ".readymesh-partial"
	f, have, err := openPartial(partial, req.Size)
	if err != nil {
		return err
	}
	defer f.Close()
	info, _ := json.Marshal(wire.FileInfo{Size: req.Size, Have: have})
	if err := wire.WriteChannelFrame(rw, wire.FrameInfo, info); err != nil {
		return err
	}
	h, err := resume(f, have)
	if err != nil {
		return err
	}
	want, err := receive(rw, f, h, have, req.Size)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(partial)
		return &wire.Error{Code: wire.CodeConflict, Message: fmt.Sprintf("checksum mismatch: got %s, want %s; the file was not replaced", got, want)}
	}
	return install(f, partial, req)
}

// openPartial opens (or creates) a put's partial file and returns how much
// of the size bytes it already holds.
func openPartial(partial string, size int64) (*os.File, int64, error) {
	// O_NOFOLLOW: a partial file planted as a symlink is refused, not
	// written through. Windows has no O_NOFOLLOW, so links are looked for
	// first there (making one needs administrator rights).
	if fi, err := os.Lstat(partial); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, 0, fmt.Errorf("%s is a symbolic link", partial)
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE|noFollow|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", partial)
	}
	return f, min(fi.Size(), size), nil
}

// resume cuts the partial file to the have bytes kept, hashes them, and
// leaves f at their end, where the copy goes on.
func resume(f *os.File, have int64) (hash.Hash, error) {
	if err := f.Truncate(have); err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, have)); err != nil {
		return nil, err
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return nil, err
	}
	return h, nil
}

// receive writes the technician's data frames to f and h, after the n
// bytes already there, until the closing frame, and returns the whole
// file's SHA-256 that frame carries.
func receive(r io.Reader, f *os.File, h hash.Hash, n, size int64) (string, error) {
	for {
		typ, p, err := wire.ReadChannelFrame(r)
		if err != nil {
			return "", fmt.Errorf("copy interrupted at %d of %d bytes (resume it): %w", n, size, err)
		}
		switch typ {
		case wire.FrameInput:
			if n+int64(len(p)) > size {
				return "", fmt.Errorf("more than the announced %d bytes", size)
			}
			if _, err := f.Write(p); err != nil {
				return "", err
			}
			h.Write(p)
			n += int64(len(p))
		case wire.FrameDone:
			if len(p) != 64 {
				return "", fmt.Errorf("%w: the closing checksum is not a hex SHA-256", wire.ErrFrame)
			}
			if n != size {
				return "", fmt.Errorf("got %d of %d bytes", n, size)
			}
			return string(p), nil
		}
	}
}

// install makes the verified file durable, gives it its mode (0644 when
// none was sent) and renames it into place.
func install(f *os.File, partial string, req wire.FileRequest) error {
	if err := f.Sync(); err != nil {
		return err
	}
	mode := os.FileMode(req.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return os.Rename(partial, req.Path)
}
