package update

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// rename is os.Rename (on Windows MoveFileEx with
// MOVEFILE_REPLACE_EXISTING); tests replace it to make a rename fail.
var rename = os.Rename

// swap puts p.New in place of p.Exe and keeps the replaced binary as
// p.Previous. It can be run again after a crash in the middle: once
// p.New is gone and p.Exe exists, it is done.
//
// EXE is present at every moment where the system allows it: the
// previous binary is kept first, as a hard link to EXE (a copy where
// links fail), then EXE.new is renamed over EXE. Windows refuses to
// replace the file of a running program (the watchdog is EXE), though it
// lets it be renamed; there EXE is renamed aside and EXE.new to EXE, and
// if that second rename fails the first is undone, or EXE is copied back
// from EXE.previous. EXE.new is never deleted here.
func swap(p Paths) error {
	if _, err := os.Stat(p.New); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(p.Exe); err != nil {
			return fmt.Errorf("commit: neither %s nor %s is there", filepath.Base(p.New), filepath.Base(p.Exe))
		}
		return nil
	}
	clearAside(p.Previous)
	clearAside(p.Exe)
	err := keepPrevious(p)
	if err == nil {
		err = replace(p)
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return syncDir(filepath.Dir(p.Exe))
}

// keepPrevious makes EXE.previous a link to (or a copy of) EXE, moving
// an older previous binary aside first: it may still run, as the
// watchdog of an earlier update. When EXE is missing (a swap cut short
// between its renames) EXE.previous was kept already.
func keepPrevious(p Paths) error {
	if _, err := os.Stat(p.Exe); err != nil {
		if _, perr := os.Stat(p.Previous); perr != nil {
			return fmt.Errorf("neither %s nor %s is there", filepath.Base(p.Exe), filepath.Base(p.Previous))
		}
		return nil
	}
	tmp := p.Previous + ".tmp"
	os.Remove(tmp)
	if err := os.Link(p.Exe, tmp); err != nil {
		if err := copyFile(p.Exe, tmp); err != nil {
			return fmt.Errorf("keep the previous binary: %w", err)
		}
	}
	if err := moveAside(p.Previous); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("move the older previous binary aside: %w", err)
	}
	if err := rename(tmp, p.Previous); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keep the previous binary: %w", err)
	}
	return nil
}

// replace renames EXE.new over EXE; where that fails (Windows, EXE
// running) it renames EXE aside first, and puts it back if EXE.new
// cannot follow. It fails only with EXE there, unless EXE could not be
// put back by rename nor copied from EXE.previous.
func replace(p Paths) error {
	err := rename(p.New, p.Exe)
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(p.Exe); serr != nil {
		return fmt.Errorf("put the new binary in place: %w", err)
	}
	aside := asideName(p.Exe)
	if err := rename(p.Exe, aside); err != nil {
		return fmt.Errorf("put the new binary in place: %w", err)
	}
	if err = rename(p.New, p.Exe); err == nil {
		os.Remove(aside) // fails while it runs; clearAside retries later
		return nil
	}
	err = fmt.Errorf("put the new binary in place: %w", err)
	if uerr := rename(aside, p.Exe); uerr != nil {
		return errors.Join(err, RestoreExe(p))
	}
	return err
}

// RestoreExe makes sure EXE is there after a failed or interrupted
// commit: when it is missing it is copied back from EXE.previous (the
// binary it was before the commit began). It fails when EXE is still
// missing; then nothing may delete EXE.new.
func RestoreExe(p Paths) error {
	if _, err := os.Stat(p.Exe); err == nil {
		return nil
	}
	if err := copyFile(p.Previous, p.Exe); err != nil {
		return fmt.Errorf("restore %s from %s: %w", filepath.Base(p.Exe), filepath.Base(p.Previous), err)
	}
	if _, err := os.Stat(p.Exe); err != nil {
		return fmt.Errorf("restore %s: %w", filepath.Base(p.Exe), err)
	}
	return nil
}

// asideName is a unique name beside path.
func asideName(path string) string {
	var b [4]byte
	rand.Read(b[:])
	return path + ".old-" + hex.EncodeToString(b[:])
}

// moveAside renames path, if it exists, to a unique name beside it and
// tries to delete it there. A file that is running cannot be deleted on
// Windows but can be renamed; clearAside deletes it at a later commit.
func moveAside(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	aside := asideName(path)
	if err := rename(path, aside); err != nil {
		return err
	}
	os.Remove(aside)
	return nil
}

// clearAside deletes the files moveAside left beside path, where it can.
func clearAside(path string) {
	old, _ := filepath.Glob(path + ".old-*")
	for _, f := range old {
		os.Remove(f)
	}
}

// copyFile copies src to dst (mode 0755), synced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
