package service

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// TestLogFile: records append; one that would take the file past its
// limit moves it to .1 first, replacing the older one; a reopened log
// counts what its file holds.
func TestLogFile(t *testing.T) {
	path := filepath.Join(testdir.New(t), "sessiond.log")
	rec := func(c byte) []byte { return append(bytes.Repeat([]byte{c}, 39), '\n') } // 40 bytes
	l, err := OpenLog(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []byte("ab") {
		if _, err := l.Write(rec(c)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l, err = OpenLog(path, 100) // 80 bytes there: the next record moves them aside
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []byte("cdef") {
		if _, err := l.Write(rec(c)); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string][]byte{
		path:        append(rec('e'), rec('f')...),
		path + ".1": append(rec('c'), rec('d')...),
	} {
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s holds %q (%v), want %q", filepath.Base(file), got, err, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 && runtime.GOOS != "windows" {
		t.Errorf("log mode %04o, want 0600", fi.Mode().Perm())
	}
	l.Close()
	if _, err := l.Write(rec('g')); err == nil {
		t.Error("a write after Close succeeded")
	}
}
