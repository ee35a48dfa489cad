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

// swap puts p.New in place of p.Exe and keeps the replaced binary as
// p.Previous. It can be run again after a crash in the middle: once
// p.New is gone and p.Exe exists, it is done. With link (Unix) EXE
// exists at every instant: the previous binary is kept as a hard link
// (a copy where links fail) and p.New renamed over EXE. Without it
// (Windows, where the running watchdog's file cannot be replaced, only
// renamed) EXE is renamed to EXE.previous and EXE.new to EXE; if the
// second rename fails, the first is undone.
func swap(p Paths, link bool) error {
	if _, err := os.Stat(p.New); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(p.Exe); err != nil {
			return fmt.Errorf("commit: neither %s nor %s is there", filepath.Base(p.New), filepath.Base(p.Exe))
		}
		return nil
	}
	clearAside(p.Previous)
	var err error
	if link {
		err = swapLinked(p)
	} else {
		err = swapRenamed(p)
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return syncDir(filepath.Dir(p.Exe))
}

// swapLinked keeps EXE as EXE.previous by a link, then renames EXE.new
// over EXE. (EXE is missing only after a Windows-style swap was cut
// short; then EXE.previous is kept already.)
func swapLinked(p Paths) error {
	if _, err := os.Stat(p.Exe); err != nil {
		return os.Rename(p.New, p.Exe)
	}
	tmp := p.Previous + ".tmp"
	os.Remove(tmp)
	if err := os.Link(p.Exe, tmp); err != nil {
		if err := copyFile(p.Exe, tmp); err != nil {
			return fmt.Errorf("keep the previous binary: %w", err)
		}
	}
	if err := os.Rename(tmp, p.Previous); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keep the previous binary: %w", err)
	}
	return os.Rename(p.New, p.Exe)
}

// swapRenamed renames EXE to EXE.previous (moving an older previous
// binary aside first: it may still run, as the watchdog of an earlier
// update) and EXE.new to EXE.
func swapRenamed(p Paths) error {
	moved := false
	if _, err := os.Stat(p.Exe); err == nil {
		if err := moveAside(p.Previous); err != nil {
			return fmt.Errorf("move the older previous binary aside: %w", err)
		}
		if err := os.Rename(p.Exe, p.Previous); err != nil {
			return fmt.Errorf("keep the previous binary: %w", err)
		}
		moved = true
	}
	if err := os.Rename(p.New, p.Exe); err != nil {
		if moved {
			os.Rename(p.Previous, p.Exe)
		}
		return err
	}
	return nil
}

// moveAside renames path, if it exists, to a unique name beside it and
// tries to delete it there. A file that is running cannot be deleted on
// Windows but can be renamed; clearAside deletes it at a later commit.
func moveAside(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var b [4]byte
	rand.Read(b[:])
	aside := path + ".old-" + hex.EncodeToString(b[:])
	if err := os.Rename(path, aside); err != nil {
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
