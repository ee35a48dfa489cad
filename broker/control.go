package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/readymesh/readymesh/broker/localctl"
	"github.com/readymesh/readymesh/peer/wire"
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

// OpRotateAdmin is the control socket's operation that rotates the
// broker's admin credential (enrol.Admission.RotateAdmin). Its arguments
// are a RotateAdminArgs, its result a RotateAdminReply.
const OpRotateAdmin = "rotate-admin-credential"

// RotateAdminArgs are OpRotateAdmin's arguments.
type RotateAdminArgs struct {
	// User is the local account that asked (the control socket admits
	// only the broker's account and root); the audit log names it.
	User string `json:"user"`
}

// RotateAdminReply is the result of OpRotateAdmin.
type RotateAdminReply struct {
	// Path is the new credential's file.
	Path string `json:"path"`
	// SignedOut is how many admin keys were signed out, on every broker.
	SignedOut int `json:"signed_out"`
	// Name and PeerID are the broker's.
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
}

// RotatedBy is how the records and the audit log name a local account
// that rotated the admin credential.
func RotatedBy(user string) (string, error) {
	if err := wire.ValidName("user", user); err != nil {
		return "", fmt.Errorf("admin credential rotation: %w", err)
	}
	return "local-" + user, nil
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
	srv.Handle(OpRotateAdmin, b.serveRotateAdmin)
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

// serveRotateAdmin rotates the admin credential and audits it.
func (b *Broker) serveRotateAdmin(_ context.Context, raw json.RawMessage, _ io.Writer) (any, error) {
	var args RotateAdminArgs
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, fmt.Errorf("admin credential rotation: arguments: %w", err)
	}
	by, err := RotatedBy(args.User)
	if err != nil {
		return nil, err
	}
	r, err := b.admit.RotateAdmin(by)
	if err != nil {
		return nil, err
	}
	b.audit.Add(wire.AuditEntry{Event: wire.AuditCredentialRotated, Technician: by,
		Detail: RotationDetail(b.cfg.Name, b.ID(), len(r.SignedOut))})
	return RotateAdminReply{Path: r.Path, SignedOut: len(r.SignedOut), Name: b.cfg.Name, PeerID: b.ID()}, nil
}

// RotationDetail is the audit log's account of a rotation.
func RotationDetail(name, peerID string, signedOut int) string {
	if name == "" {
		name = peerID
	}
	return fmt.Sprintf("admin credential of broker %s rotated; %d admin key(s) signed out on every broker", name, signedOut)
}
