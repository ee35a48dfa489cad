package releases

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// upload answers an admin's put: the bytes from req.Offset, which must be
// what this broker holds of the blob (a has answers it), to the end, each
// chunk committed as it arrives. The reply says what the broker holds
// after it: the whole blob, checked against its name.
func (r *Room) upload(s *serve.Stream, c caller, req *wire.BlobRequest) (any, error) {
	if !c.tech.Admin {
		return nil, notAdmin(c)
	}
	release, err := r.claimUpload(c.id, s.Stream)
	if err != nil {
		return nil, err
	}
	defer release()
	r.maybeSweep()
	have, err := r.uploadStart(req)
	if err != nil || have == req.Size {
		return &wire.BlobReply{Have: have, Versions: wire.OurVersions()}, err
	}
	body := io.MultiReader(bytes.NewReader(s.Reader.Buffered()), s.Stream)
	buf := make([]byte, store.BlobChunk)
	for off := have; off < req.Size; {
		n := min(store.BlobChunk, req.Size-off)
		s.SetDeadline(time.Now().Add(r.cfg.Idle))
		if _, err := io.ReadFull(body, buf[:n]); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "the upload stopped at %d of %d bytes (%v): resume from %d", off, req.Size, err, off)
		}
		m, err := r.deps.Blobs.WriteBlobChunk(req.SHA256, req.Size, off, buf[:n], r.cfg.Now())
		if err != nil {
			return nil, blobWriteError(err)
		}
		r.metrics.moved(flowFromTech, int(n))
		off = m.Have
	}
	r.log.Info("release blob uploaded", "blob", req.SHA256, "size", req.Size, "from", req.Offset, "technician", c.tech.Name)
	r.deps.Audit.Add(wire.AuditEntry{Event: AuditBlobUploaded, Technician: c.tech.Name,
		Detail: fmt.Sprintf("release blob %s, %d bytes (%d sent from byte %d)", req.SHA256, req.Size, req.Size-have, have)})
	s.SetDeadline(time.Now().Add(r.cfg.Idle))
	return &wire.BlobReply{Have: req.Size, Versions: wire.OurVersions()}, nil
}

// uploadStart returns what the broker holds of the blob, and refuses an
// upload that does not start there (the refusal's Have says where to) or
// names another size.
func (r *Room) uploadStart(req *wire.BlobRequest) (int64, error) {
	m, ok := r.deps.Blobs.BlobHave(req.SHA256)
	switch {
	case ok && m.Size != req.Size:
		return 0, wire.Errorf(wire.CodeConflict, "blob %s is being stored as %d bytes, not %d", req.SHA256, m.Size, req.Size)
	case m.Have == req.Size:
		return m.Have, nil // whole already: nothing to read
	case req.Offset != m.Have:
		return m.Have, wire.Errorf(wire.CodeConflict, "this broker holds %d bytes of blob %s, the upload starts at %d: resume from %d",
			m.Have, req.SHA256, req.Offset, m.Have)
	}
	return m.Have, nil
}

// blobWriteError is the refusal of a failed chunk write.
func blobWriteError(err error) *wire.Error {
	switch {
	case errors.Is(err, store.ErrBlobHash):
		return wire.Errorf(wire.CodeBadRequest, "%v: upload it again from its start", err)
	case errors.Is(err, store.ErrBlobOffset), errors.Is(err, store.ErrBlobSize):
		return wire.Errorf(wire.CodeConflict, "%v", err)
	case errors.Is(err, store.ErrMalformed):
		return wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	return wire.Errorf(wire.CodeInternal, "storing the blob: %v", err)
}

// upload is a technician's running put.
type upload struct {
	s    network.Stream
	done chan struct{} // closed once the put returned
}

// claimUpload makes s the technician's one upload. An older one still
// running (an upload cut off on the technician's side, which this broker
// has not noticed yet: its reads wait up to Config.Idle) is superseded:
// its stream is reset and the claim waits for it to return, so the new
// put starts at what the old one committed. The returned func releases
// the claim.
func (r *Room) claimUpload(id peer.ID, s network.Stream) (func(), error) {
	for range 3 { // another put may claim between the wait and the lock
		r.mu.Lock()
		old := r.uploads[id]
		if old == nil {
			u := &upload{s: s, done: make(chan struct{})}
			r.uploads[id] = u
			r.mu.Unlock()
			return func() { r.releaseUpload(id, u) }, nil
		}
		r.mu.Unlock()
		old.s.Reset()
		select {
		case <-old.done:
		case <-time.After(r.cfg.Idle):
			return nil, errUploadRunning
		}
	}
	return nil, errUploadRunning
}

// errUploadRunning refuses a put while an older one will not end.
var errUploadRunning = wire.Errorf(wire.CodeConflict,
	"an earlier upload by this technician is still ending on this broker: retry in a moment")

func (r *Room) releaseUpload(id peer.ID, u *upload) {
	r.mu.Lock()
	if r.uploads[id] == u {
		delete(r.uploads, id)
	}
	r.mu.Unlock()
	close(u.done)
}
