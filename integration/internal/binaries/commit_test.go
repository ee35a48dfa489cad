package binaries

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildAtWithoutHistory asks for a commit the directory's history
// cannot hold: the error says so through ErrNoCommit, and no cache
// directory is made.
func TestBuildAtWithoutHistory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	_, err := BuildAt(t.TempDir(), strings.Repeat("0", 40), dir, "")
	if !errors.Is(err, ErrNoCommit) {
		t.Fatalf("BuildAt in a directory without history: %v, want ErrNoCommit", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cache directory made anyway: %v", err)
	}
}

// TestBuildAtReusesCache returns a directory holding the three binaries
// without looking at the repository.
func TestBuildAtReusesCache(t *testing.T) {
	dir := t.TempDir()
	want := In(dir)
	for _, f := range []string{want.Broker, want.Sessiond, want.Meshctl} {
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := BuildAt(filepath.Join(dir, "no-such-repo"), "HEAD", dir, "")
	if err != nil || got != want {
		t.Fatalf("BuildAt on a complete cache: %+v, %v; want %+v", got, err, want)
	}
}

// TestExtract writes what git archive writes (a global header, a
// directory, files with their modes, a symbolic link) and refuses a name
// leaving the tree.
func TestExtract(t *testing.T) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	entries := []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "c0ffee"}}, ""},
		{tar.Header{Typeflag: tar.TypeDir, Name: "cmd/", Mode: 0o755}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "cmd/main.go", Mode: 0o644}, "package main\n"},
		{tar.Header{Typeflag: tar.TypeReg, Name: "run.sh", Mode: 0o755}, "#!/bin/sh\n"},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "run.sh"}, ""},
	}
	for _, e := range entries {
		e.h.Size = int64(len(e.body))
		if err := w.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	w.Close()
	dst := t.TempDir()
	if err := extract(tar.NewReader(&buf), dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "cmd", "main.go")); err != nil || string(b) != "package main\n" {
		t.Errorf("cmd/main.go: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh: %v, %v; want mode 0755", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "run.sh" {
		t.Errorf("link: %q, %v", l, err)
	}

	buf.Reset()
	w = tar.NewWriter(&buf)
	w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../escape", Mode: 0o644})
	w.Close()
	if err := extract(tar.NewReader(&buf), t.TempDir()); err == nil {
		t.Error("extracted a name leaving the tree")
	}
}

// TestExportTree exports a commit of a scratch repository: its files as
// committed, not the work tree's later edits.
func TestExportTree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("skipping: no git command on PATH")
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.invalid"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module example\n"), 0o644)
	git("add", "go.mod")
	git("commit", "-q", "-m", "first")
	commit, err := resolveCommit(context.Background(), repo, git("rev-parse", "--short", "HEAD"))
	if err != nil || len(commit) != 40 {
		t.Fatalf("resolveCommit: %q, %v", commit, err)
	}
	os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module edited\n"), 0o644)
	dst := t.TempDir()
	if err := exportTree(context.Background(), repo, commit, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "go.mod")); string(b) != "module example\n" {
		t.Fatalf("exported go.mod: %q, want the committed one", b)
	}
}
