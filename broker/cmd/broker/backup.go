package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/broker/backup"
	"github.com/readymesh/readymesh/broker/localctl"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// defaultDataDir is broker run's default --data.
const defaultDataDir = "/var/lib/readymesh/broker"

// backupCmd writes a backup of the broker on --data: through its control
// socket while it runs, from its store file while it does not.
func backupCmd(args []string) error {
	fs := newFlags("backup")
	dataDir := fs.String("data", defaultDataDir, "the broker's data `dir`ectory")
	out := fs.String("out", "", "backup `file` to write (mode 0600; replaced once the new one is complete)")
	noKey := fs.Bool("no-key", false, "leave the broker's key out: a broker restored from the backup gets a new identity, which agents enrolled with the old one do not trust")
	timeout := fs.Duration("timeout", time.Hour, "give up after this `long`")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "broker backup: --out is required")
		fs.Usage()
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	line, err := runBackup(ctx, *dataDir, *out, !*noKey)
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// runBackup writes the backup and returns its one-line summary.
func runBackup(ctx context.Context, dataDir, out string, withKey bool) (string, error) {
	src, err := backupSource(dataDir, withKey)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	from := ""
	src.Snapshot = func(w io.Writer) (int64, error) {
		n, how, err := snapshot(ctx, dataDir, src.Broker.PeerID, w)
		from = how
		return n, err
	}
	sum, err := backup.Write(out, src)
	if err != nil {
		return "", err
	}
	m := sum.Manifest
	key := "key included"
	if !m.HasKey() {
		key = "key left out"
	}
	return fmt.Sprintf("backed up broker %s (%s) to %s: %d bytes, sha256 %s, %d machines, %s, from %s",
		orUnnamed(m.Broker.Name), m.Broker.PeerID, out, sum.Bytes, sum.SHA256, m.Store.Machines, key, from), nil
}

// backupSource names the broker from its data directory (its key, and
// the name in broker.json) and reads its key unless withKey is false.
func backupSource(dataDir string, withKey bool) (backup.Source, error) {
	var src backup.Source
	if _, err := os.Stat(filepath.Join(dataDir, broker.StoreFile)); err != nil {
		return src, fmt.Errorf("%s holds no broker store: %w", dataDir, err)
	}
	if raw, err := os.ReadFile(filepath.Join(dataDir, broker.InfoFile)); err == nil {
		var info wire.BrokerInfo
		if json.Unmarshal(raw, &info) == nil {
			src.Broker = backup.Broker{Name: info.Name, PeerID: info.PeerID}
		}
	}
	keyPath := filepath.Join(dataDir, broker.KeyFile)
	k, err := identity.Load(keyPath)
	switch {
	case err == nil:
		src.Broker.PeerID = k.ID.String()
	case withKey || !errors.Is(err, fs.ErrNotExist):
		return src, err
	case src.Broker.PeerID == "":
		return src, fmt.Errorf("%s has neither a key nor broker.json to name the broker by", dataDir)
	}
	if withKey {
		if src.Key, err = os.ReadFile(keyPath); err != nil {
			return src, err
		}
	}
	return src, nil
}

// snapshot writes the store snapshot to w: asked of the broker running on
// dataDir, or, when none runs, read from its store file. how says which.
func snapshot(ctx context.Context, dataDir, peerID string, w io.Writer) (n int64, how string, err error) {
	var reply broker.BackupReply
	err = localctl.Call(ctx, localctl.SocketPath(dataDir), broker.OpBackup, nil, &reply, w)
	switch {
	case err == nil && reply.PeerID != peerID:
		return 0, "", fmt.Errorf("the broker on the control socket is %s, the key in %s is %s", reply.PeerID, dataDir, peerID)
	case err == nil:
		return reply.Bytes, "the running broker", nil
	case !errors.Is(err, localctl.ErrNoServer):
		return 0, "", err
	}
	n, err = store.BackupFile(filepath.Join(dataDir, broker.StoreFile), w)
	if errors.Is(err, store.ErrStoreInUse) {
		return n, "", fmt.Errorf("%w, but no broker answers on %s: if a broker is starting, try again once it is ready", err, localctl.SocketPath(dataDir))
	}
	return n, "the stopped broker's store file", err
}

// restoreCmd lays a backup down as a new data directory.
func restoreCmd(args []string) error {
	fs := newFlags("restore")
	dataDir := fs.String("data", "", "the new data `dir`ectory; it must not hold a store")
	// The backup file may come first: broker restore FILE --data DIR.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:len(args):len(args)], args[0])
	}
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "broker restore: --data is required")
		fs.Usage()
		return errUsage
	}
	text, err := runRestore(fs.Arg(0), *dataDir)
	if err != nil {
		return err
	}
	fmt.Print(text)
	return nil
}

// runRestore restores and returns what to tell the operator.
func runRestore(file, dataDir string) (string, error) {
	m, err := backup.Restore(file, dataDir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "restored broker %s (%s) into %s: %d machines, backed up %s by broker %s\n",
		orUnnamed(m.Broker.Name), m.Broker.PeerID, dataDir, m.Store.Machines, m.CreatedAt.Format(time.RFC3339), m.Build.Version)
	if !m.HasKey() {
		fmt.Fprintf(&b, "the backup has no key: the broker starts with a new identity (or the key already in %s); agents enrolled with %s do not trust it until enrolled again\n",
			dataDir, m.Broker.PeerID)
	}
	fmt.Fprintf(&b, "start it with: broker run --data %s (and its usual flags; in a cluster it catches up from the other brokers)\n", dataDir)
	return b.String(), nil
}

func orUnnamed(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}
