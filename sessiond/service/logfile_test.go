package service

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// rec is a log record of 40 bytes made of c.
func rec(c byte) []byte { return append(bytes.Repeat([]byte{c}, 39), '\n') }

// TestLogFile: records append; one that would take the file past its
// limit moves it to .1 first, replacing the older one; a reopened log
// counts what its file holds.
func TestLogFile(t *testing.T) {
	path := filepath.Join(testdir.New(t), "sessiond.log")
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

// TestLogFileReopens: a rotation whose new file cannot be opened leaves
// the log without a file, not closed for good: each later write tries to
// open it once, fails with the reason while it cannot, and writes once
// it can. Close ends the retries.
func TestLogFileReopens(t *testing.T) {
	path := filepath.Join(testdir.New(t), "sessiond.log")
	l, err := OpenLog(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, c := range []byte("ab") {
		if _, err := l.Write(rec(c)); err != nil {
			t.Fatal(err)
		}
	}
	diskFull := errors.New("disk full")
	failing, opens := diskFull, 0
	l.testHookOpen = func() error { opens++; return failing }
	for i, step := range []struct {
		c     byte
		fails bool   // with diskFull, saying err
		err   string // part of the error
		opens int    // opens so far
	}{
		{c: 'c', fails: true, err: "log file: rotating: disk full", opens: 1},
		{c: 'd', fails: true, err: "log file: reopening after a failed rotation: disk full", opens: 2},
		{c: 'e', opens: 3},
		{c: 'f', opens: 3},
	} {
		if i == 2 {
			failing = nil
		}
		_, err := l.Write(rec(step.c))
		if step.fails && (!errors.Is(err, diskFull) || err.Error() != step.err) || !step.fails && err != nil {
			want := "no error"
			if step.fails {
				want = strconv.Quote(step.err)
			}
			t.Errorf("write of %c: %v, want %s", step.c, err, want)
		}
		if opens != step.opens {
			t.Errorf("after the write of %c: %d opens, want %d", step.c, opens, step.opens)
		}
	}
	for file, want := range map[string][]byte{
		path:        append(rec('e'), rec('f')...),
		path + ".1": append(rec('a'), rec('b')...),
	} {
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s holds %q (%v), want %q", filepath.Base(file), got, err, want)
		}
	}
	l.Close()
	if _, err := l.Write(rec('g')); !errors.Is(err, os.ErrClosed) || opens != 3 {
		t.Errorf("a write after Close: %v after %d opens; want os.ErrClosed and no open", err, opens)
	}
}
