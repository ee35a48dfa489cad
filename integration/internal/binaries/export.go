package binaries

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// exportTree writes the tree of commit in repo into dst, reading the tar
// stream of git archive: unlike git worktree add, this leaves nothing in
// the repository to clean up when a run is interrupted.
func exportTree(ctx context.Context, repo, commit, dst string) error {
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git archive: %w", err)
	}
	extractErr := extract(tar.NewReader(out), dst)
	// Drain what extract left (on an error) so git is not blocked writing.
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive: %v: %s", err, stderr.String())
	}
	if extractErr != nil {
		return fmt.Errorf("git archive: extract: %w", extractErr)
	}
	return nil
}

// extract writes the entries of r under dst: directories, regular files
// with their mode bits, and symbolic links. git archive writes nothing
// else, except its global header naming the commit, which is skipped.
func extract(r *tar.Reader, dst string) error {
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := extractEntry(r, h, dst); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// extractEntry writes one entry, refusing a name that leaves dst.
func extractEntry(r io.Reader, h *tar.Header, dst string) error {
	name := filepath.FromSlash(h.Name)
	if !filepath.IsLocal(name) {
		return errors.New("path outside the tree")
	}
	path := filepath.Join(dst, name)
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(path, 0o755)
	case tar.TypeReg:
		return writeFile(path, r, os.FileMode(h.Mode).Perm())
	case tar.TypeSymlink:
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.Symlink(h.Linkname, path)
	}
	return nil // the pax global header
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
