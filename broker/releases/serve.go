package releases

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// requestDeadline bounds a stream until its transfer starts: reading the
// request, and the queue for a download slot (within Config.QueueWait).
// Transfers then move their deadline chunk by chunk.
const requestDeadline = 30 * time.Second

// Spec is how ProtoRelease streams open: machines, technicians and the
// cluster's brokers are admitted by key before their request is read.
func (r *Room) Spec() serve.Spec {
	return serve.Spec{Name: "release", Deadline: requestDeadline + r.cfg.QueueWait, MaxRequest: 4 << 10,
		Reply: func() wire.Refusable { return &wire.BlobReply{} }, Admit: r.admit}
}

// role is who opened a stream.
type role int

const (
	roleAgent role = iota
	roleTechnician
	roleBroker
)

// caller is an admitted peer.
type caller struct {
	id   peer.ID
	role role
	tech wire.Technician // for roleTechnician
}

var errStranger = wire.Errorf(wire.CodeUnauthorized,
	"this key is not an enrolled machine, a technician or a broker of this cluster")

// admit admits brokers of the cluster, enrolled machines and
// technicians. A removed machine or a disabled technician is told so.
func (r *Room) admit(remote peer.ID) error {
	_, err := r.who(remote)
	return err
}

// who says who remote is, or why it is refused.
func (r *Room) who(remote peer.ID) (caller, error) {
	if r.deps.Cluster.IsMember(remote.String()) {
		return caller{id: remote, role: roleBroker}, nil
	}
	merr := r.deps.Keys.Machine(remote)
	if merr == nil {
		return caller{id: remote, role: roleAgent}, nil
	}
	t, terr := r.deps.Keys.Technician(remote)
	if terr == nil {
		return caller{id: remote, role: roleTechnician, tech: t}, nil
	}
	for _, err := range []error{merr, terr} {
		var e *wire.Error
		if errors.As(err, &e) && (e.Code == wire.CodeRemoved || e.Code == wire.CodeRevoked) {
			return caller{}, e
		}
	}
	return caller{}, errStranger
}

// Serve answers one ProtoRelease stream.
func (r *Room) Serve(s *serve.Stream, req *wire.BlobRequest) (any, error) {
	s.Op = req.Op
	c, err := r.who(s.Remote) // again: a key may be revoked since admission
	if err != nil {
		return nil, err
	}
	if e := wire.CheckVersions(req.Versions, c.label(), "broker "+buildinfo.Version); e != nil {
		return nil, e
	}
	switch {
	case req.Op == wire.BlobHas:
		return r.has(c, req)
	case req.Op == wire.BlobPut && c.role == roleTechnician:
		return r.upload(s, c, req)
	case req.Op == wire.BlobPut:
		return nil, wire.Errorf(wire.CodeForbidden, "only admin technicians upload release binaries")
	case c.role == roleAgent:
		return nil, r.serveAgent(s, c, req)
	case c.role == roleBroker:
		return nil, r.serveBroker(s, c, req)
	}
	return nil, wire.Errorf(wire.CodeForbidden, "technicians upload release binaries (put); agents and brokers download them")
}

func (c caller) label() string {
	switch c.role {
	case roleAgent:
		return "agent"
	case roleBroker:
		return "broker"
	}
	return "meshctl"
}

// has answers BlobHas: how many bytes of the blob this broker holds. An
// agent may ask only of the blobs it may download; a technician must be
// an admin.
func (r *Room) has(c caller, req *wire.BlobRequest) (any, error) {
	switch c.role {
	case roleAgent:
		if err := r.downloadable(req); err != nil {
			return nil, err
		}
	case roleTechnician:
		if !c.tech.Admin {
			return nil, notAdmin(c)
		}
	}
	m, ok := r.deps.Blobs.BlobHave(req.SHA256)
	switch {
	case !ok:
		return &wire.BlobReply{}, nil
	case m.Size != req.Size:
		return nil, wire.Errorf(wire.CodeConflict, "blob %s is %d bytes here, not %d", req.SHA256, m.Size, req.Size)
	}
	return &wire.BlobReply{Have: m.Have, Versions: wire.OurVersions()}, nil
}

func notAdmin(c caller) *wire.Error {
	return wire.Errorf(wire.CodeForbidden, "release binaries are uploaded by admin technicians; %s is not one", c.tech.Name)
}

// downloadable refuses a blob agents may not download: one no published
// release names, one only withdrawn releases name, or the wrong size.
func (r *Room) downloadable(req *wire.BlobRequest) error {
	n, ok, err := r.catalog.lookup(req.SHA256)
	switch {
	case err != nil:
		return wire.Errorf(wire.CodeInternal, "reading the releases: %v", err)
	case !ok:
		return wire.Errorf(wire.CodeNotFound, "no published release names blob %s", req.SHA256)
	case n.live == "":
		return wire.Errorf(wire.CodeGone, "release %s, which names blob %s, was withdrawn", n.withdrawn, req.SHA256)
	case n.size != req.Size:
		return wire.Errorf(wire.CodeBadRequest, "blob %s is %d bytes in release %s, not %d", req.SHA256, n.size, n.live, req.Size)
	}
	return nil
}
