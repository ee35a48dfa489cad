package broker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/localctl"
	"github.com/readymesh/readymesh/broker/store"
)

// TestBackupOverControlSocket: a serving broker answers the backup
// operation on DATA_DIR/broker.sock (mode 0600) with a snapshot holding
// every acknowledged check-in, names itself in the result, and removes the
// socket when it stops.
func TestBackupOverControlSocket(t *testing.T) {
	tb := startBroker(t)
	_, tok := tb.fleet(t)
	agent := tb.agent(t, tok, "desk-01")
	for seq := uint64(1); seq <= 3; seq++ {
		if ack := agent.checkIn(seq, testSnapshot("desk-01")); ack.Error != nil {
			t.Fatalf("check-in %d: %v", seq, ack.Error)
		}
	}
	sock := localctl.SocketPath(tb.cfg.DataDir)
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v; want a socket with mode 0600", fi, err)
	}

	path := filepath.Join(t.TempDir(), "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reply BackupReply
	err = localctl.Call(ctx, sock, OpBackup, nil, &reply, f)
	f.Close()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if reply.PeerID != tb.ID() || reply.Name != tb.Info().Name || reply.Bytes <= 0 {
		t.Errorf("reply %+v, want this broker (%s, %s)", reply, tb.Info().Name, tb.ID())
	}
	info, err := store.CheckBackup(path)
	if err != nil || info.Machines != 1 || info.Size != reply.Bytes {
		t.Fatalf("CheckBackup = %+v, %v; want 1 machine, %d bytes", info, err, reply.Bytes)
	}
	st, err := store.Open(store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if m, ok := st.Machine(agent.ID()); !ok || m.LastCheckIn == nil || m.LastCheckIn.Seq != 3 {
		t.Errorf("the snapshot holds %+v for the agent, want check-in 3", m.LastCheckIn)
	}
	if !tb.log.has("store backed up") {
		t.Error("the backup was not logged")
	}
}

// TestControlSocketRemovedAtStop: the socket goes with the broker, and a
// call then finds no broker.
func TestControlSocketRemovedAtStop(t *testing.T) {
	var sock string
	t.Run("serve", func(t *testing.T) {
		tb := startBroker(t)
		sock = localctl.SocketPath(tb.cfg.DataDir)
		if _, err := os.Lstat(sock); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after the broker stopped: %v", err)
	}
	if err := localctl.Call(context.Background(), sock, OpBackup, nil, nil, nil); !errors.Is(err, localctl.ErrNoServer) {
		t.Errorf("backup with no broker: %v, want ErrNoServer", err)
	}
}
