package broker

import (
	"context"
	"encoding/json"
	"io"
	"sync"

	"github.com/readymesh/readymesh/broker/localctl"
)

// OpBackup is the control socket's backup operation: the reply streams a
// snapshot of the store (store.Store.Backup) and ends with a BackupReply.
const OpBackup = "backup"

// BackupReply is the result of OpBackup.
type BackupReply struct {
	// Bytes is the snapshot's size.
	Bytes int64 `json:"bytes"`
	// Name and PeerID are the broker's.
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
}

// startControl serves the local control socket (package localctl) in the
// data directory until ctx ends. Operations are registered here. Without
// the socket (a data directory path too long for one, say) the broker
// still serves; what needs the socket says it cannot reach the broker.
func (b *Broker) startControl(ctx context.Context, loops *sync.WaitGroup) {
	srv, err := localctl.Listen(localctl.Config{Path: localctl.SocketPath(b.cfg.DataDir), Logger: b.log})
	if err != nil {
		b.log.Error("no local control socket: broker backup cannot reach this broker while it runs", "err", err)
		return
	}
	srv.Handle(OpBackup, b.serveBackup)
	loops.Go(func() { srv.Serve(ctx) })
}

// serveBackup streams a snapshot of the store.
func (b *Broker) serveBackup(_ context.Context, _ json.RawMessage, stream io.Writer) (any, error) {
	n, err := b.store.Backup(stream)
	if err != nil {
		return nil, err
	}
	b.log.Info("store backed up through the control socket", "bytes", n)
	return BackupReply{Bytes: n, Name: b.cfg.Name, PeerID: b.ID()}, nil
}
