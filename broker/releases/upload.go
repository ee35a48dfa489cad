package releases

import (
	"bytes"
	"errors"
	"io"
	"time"

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
	if !r.claimUpload(c.id) {
		return nil, wire.Errorf(wire.CodeConflict, "an upload by %s is already running on this broker: uploads run one at a time per technician",
			c.tech.Name)
	}
	defer r.releaseUpload(c.id)
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

// claimUpload marks id's upload running, unless one is.
func (r *Room) claimUpload(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uploads[id] {
		return false
	}
	r.uploads[id] = true
	return true
}

func (r *Room) releaseUpload(id peer.ID) {
	r.mu.Lock()
	delete(r.uploads, id)
	r.mu.Unlock()
}
