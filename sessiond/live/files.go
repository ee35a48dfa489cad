package live

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/wire"
)

// ChanFiles copies files both ways.
const ChanFiles = "files"

// files serves one copy. Reads are allowed in every mode (a read-only
// technician may collect a log); writes need an interactive or elevated
// grant. A put lands in PATH.readymesh-partial and is renamed into place
// only when the whole file's SHA-256 matches, so an interrupted copy
// resumes and a corrupted one never replaces the original.
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
	req.Path = filepath.Clean(req.Path)
	switch req.Op {
	case "get":
		err = s.get(ch.Stream, req, id)
	case "put":
		switch {
		case ch.Grant.Mode == wire.ModeReadOnly:
			err = &wire.Error{Code: wire.CodeForbidden, Message: "read-only session: files are not written; ask for an interactive session"}
		case s.InputPaused():
			err = &wire.Error{Code: wire.CodeForbidden, Message: pausedNotice}
		default:
			err = s.put(ch.Stream, req, id)
		}
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
	log.Info("file copied")
	exitFrame(ch.Stream, 0)
}

// mayAccess approximates the kernel's check for id: the owner's bits for
// its own files, else the others' bits. An agent running as the account
// itself just tries.
func (s *Server) mayAccess(fi os.FileInfo, id identity, write bool) bool {
	if !s.root || id.uid == 0 {
		return true
	}
	bit := os.FileMode(0o004)
	if write {
		bit = 0o002
	}
	if st, ok := statOwner(fi); ok && st == id.uid {
		bit <<= 6
	}
	return fi.Mode().Perm()&bit != 0
}

func (s *Server) get(w io.Writer, req wire.FileRequest, id identity) error {
	f, err := os.Open(req.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", req.Path)
	}
	if !s.mayAccess(fi, id, false) {
		return &wire.Error{Code: wire.CodeForbidden, Message: fmt.Sprintf("%s may not read %s", id.name, req.Path)}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	info, _ := json.Marshal(wire.FileInfo{Size: fi.Size(), SHA256: hex.EncodeToString(h.Sum(nil))})
	if err := wire.WriteLiveFrame(w, wire.FrameInfo, info); err != nil {
		return err
	}
	if req.Offset > fi.Size() {
		return fmt.Errorf("offset %d is past the file's end (%d bytes)", req.Offset, fi.Size())
	}
	if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(frameWriter{w: &lockedWriter{w: w}, typ: wire.FrameOutput}, f)
	return err
}

func (s *Server) put(rw io.ReadWriter, req wire.FileRequest, id identity) error {
	dir := filepath.Dir(req.Path)
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !s.mayAccess(di, id, true) {
		return &wire.Error{Code: wire.CodeForbidden, Message: fmt.Sprintf("%s may not write in %s", id.name, dir)}
	}
	partial := req.Path + ".readymesh-partial"
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	have := min(fi.Size(), req.Size)
	info, _ := json.Marshal(wire.FileInfo{Size: req.Size, Have: have})
	if err := wire.WriteLiveFrame(rw, wire.FrameInfo, info); err != nil {
		return err
	}
	if err := f.Truncate(have); err != nil {
		return err
	}
	// Hash what a resumed copy already has, then each byte as it lands.
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, have)); err != nil {
		return err
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	n := have
	var want string
	for want == "" {
		typ, p, err := wire.ReadLiveFrame(rw)
		if err != nil {
			return fmt.Errorf("copy interrupted at %d of %d bytes (resume it): %w", n, req.Size, err)
		}
		switch typ {
		case wire.FrameInput:
			if n+int64(len(p)) > req.Size {
				return fmt.Errorf("more than the announced %d bytes", req.Size)
			}
			if _, err := f.Write(p); err != nil {
				return err
			}
			h.Write(p)
			n += int64(len(p))
		case wire.FrameDone:
			if len(p) != 64 {
				return fmt.Errorf("%w: the closing checksum is not a hex SHA-256", wire.ErrFrame)
			}
			want = string(p)
		}
	}
	if n != req.Size {
		return fmt.Errorf("got %d of %d bytes", n, req.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(partial)
		return &wire.Error{Code: wire.CodeConflict, Message: fmt.Sprintf("checksum mismatch: got %s, want %s; the file was not replaced", got, want)}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	mode := os.FileMode(req.Mode & 0o777)
	if mode == 0 {
		mode = 0o644
	}
	f.Chmod(mode)
	if s.root && id.uid != 0 {
		f.Chown(int(id.uid), int(id.gid))
	}
	return os.Rename(partial, req.Path)
}
