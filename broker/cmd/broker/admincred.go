package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/localctl"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// adminCredential shows where the broker on --data keeps its admin
// credential, or, with --rotate, replaces it and signs out every admin
// key on every broker: through the control socket while the broker runs,
// in its store file while it does not.
func adminCredential(args []string) error {
	fs := newFlags("admin-credential")
	dataDir := fs.String("data", defaultDataDir, "the broker's data `dir`ectory")
	rotate := fs.Bool("rotate", false, "replace the credential and sign out every admin key on every broker")
	timeout := fs.Duration("timeout", time.Minute, "give up after this `long`")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, enrol.CredentialFile)
	if !*rotate {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("admin credential: %w (the broker writes it when it first serves)", err)
		}
		fmt.Printf("%s\nlog in with: meshctl login --credential %s\nreplace it with: broker admin-credential --rotate --data %s\n", path, path, *dataDir)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	line, err := rotateAdmin(ctx, *dataDir, localUser())
	if err != nil {
		return err
	}
	fmt.Print(line)
	return nil
}

// localUser names the account running the command, for the audit log.
func localUser() string {
	if u, err := user.Current(); err == nil && wire.ValidName("user", u.Username) == nil {
		return u.Username
	}
	return "uid" + strconv.Itoa(os.Getuid())
}

// rotateAdmin rotates the admin credential of the broker on dataDir and
// returns what to tell the operator.
func rotateAdmin(ctx context.Context, dataDir, who string) (string, error) {
	var reply broker.RotateAdminReply
	how := "by the running broker"
	err := localctl.Call(ctx, localctl.SocketPath(dataDir), broker.OpRotateAdmin, broker.RotateAdminArgs{User: who}, &reply, nil)
	if errors.Is(err, localctl.ErrNoServer) {
		how = "in the stopped broker's store; the other brokers hear of it when it next runs"
		reply, err = rotateOffline(dataDir, who)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("rotated the admin credential of broker %s (%s) %s\n"+
		"new credential: %s (the old one logs in nowhere)\n"+
		"signed out %d admin key(s) on every broker of the cluster; log in again with: meshctl login --credential %s\n"+
		"each broker has its own credential: rotate it on every broker whose credential may have left with somebody\n",
		orUnnamed(reply.Name), reply.PeerID, how, reply.Path, reply.SignedOut, reply.Path), nil
}

// rotateOffline rotates in the store file of a broker that is not
// running, and leaves the new credential owned as the data directory is
// (the broker's own account, when root runs this for it).
func rotateOffline(dataDir, who string) (broker.RotateAdminReply, error) {
	by, err := broker.RotatedBy(who)
	if err != nil {
		return broker.RotateAdminReply{}, err
	}
	k, err := identity.Load(filepath.Join(dataDir, broker.KeyFile))
	if err != nil {
		return broker.RotateAdminReply{}, fmt.Errorf("admin credential rotation: %s is not a broker's data directory: %w", dataDir, err)
	}
	info := wire.BrokerInfo{PeerID: k.ID.String()}
	if raw, err := os.ReadFile(filepath.Join(dataDir, broker.InfoFile)); err == nil {
		var last wire.BrokerInfo
		if json.Unmarshal(raw, &last) == nil && last.PeerID == info.PeerID {
			info = last // its addresses as it last served; it rewrites them at start
		}
	}
	st, err := store.Open(store.Config{Path: filepath.Join(dataDir, broker.StoreFile), Broker: info.PeerID})
	if err != nil {
		return broker.RotateAdminReply{}, fmt.Errorf("admin credential rotation: no broker answers on %s, and its store cannot be opened (if a broker is starting, try again once it is ready): %w",
			localctl.SocketPath(dataDir), err)
	}
	defer st.Close()
	now := time.Now().UTC()
	r, err := enrol.Rotate(dataDir, info, st, by, now)
	if r.Path != "" {
		if oerr := sameOwner(r.Path, dataDir); oerr != nil {
			err = errors.Join(err, fmt.Errorf("admin credential rotation: %w", oerr))
		}
	}
	if err != nil {
		return broker.RotateAdminReply{}, err
	}
	if err := st.Audit(wire.AuditEntry{At: now, Event: wire.AuditCredentialRotated, Technician: by,
		Detail: broker.RotationDetail(info.Name, info.PeerID, len(r.SignedOut))}); err != nil {
		return broker.RotateAdminReply{}, fmt.Errorf("admin credential rotated, but the audit log entry failed: %w", err)
	}
	return broker.RotateAdminReply{Path: r.Path, SignedOut: len(r.SignedOut), Name: info.Name, PeerID: info.PeerID}, nil
}
