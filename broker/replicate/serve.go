package replicate

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Spec is how replication streams open: only members of the cluster are
// admitted, before their request is read (the stream is authenticated by
// the peer's key).
func (r *Replicator) Spec() serve.Spec {
	return serve.Spec{Name: "replicate", Deadline: pullTimeout, MaxRequest: maxReplReply,
		Reply: func() wire.Refusable { return &reply{} },
		Admit: func(remote peer.ID) error {
			if !r.IsMember(remote.String()) {
				return wire.Errorf(wire.CodeForbidden, "not a broker of this cluster")
			}
			return nil
		}}
}

// Serve answers another broker's pull or push (Proto).
func (r *Replicator) Serve(s *serve.Stream, req *request) (any, error) {
	switch req.Op {
	case "versions":
		return r.versions(req.Buckets)
	case "push":
		if _, err := r.store.Import(req.Records); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		return &reply{}, nil
	case "export":
		if len(req.Keys) > maxExportKeys {
			return nil, wire.Errorf(wire.CodeTooLarge, "too many keys")
		}
		recs, err := r.store.Export(req.Keys)
		if err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "%v", err)
		}
		return &reply{Records: recs}, nil
	}
	return nil, wire.Errorf(wire.CodeBadRequest, "unknown op %s", req.Op)
}

// versions lists the record versions in the buckets asked for.
func (r *Replicator) versions(buckets []int) (*reply, *wire.Error) {
	var rep reply
	for _, bk := range buckets {
		if bk < 0 || bk >= store.DigestBuckets {
			return nil, wire.Errorf(wire.CodeBadRequest, "bucket out of range")
		}
		rep.Versions = append(rep.Versions, r.store.BucketVersions(bk)...)
	}
	return &rep, nil
}
