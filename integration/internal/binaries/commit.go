package binaries

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoCommit means the repository's git history does not hold the commit
// asked for: a checkout from a tarball, a shallow clone that stops after
// it, or a machine without git. A test can skip on it; any other error
// from BuildAt is a failure.
var ErrNoCommit = errors.New("no git history holding the commit")

// buildAtTimeout bounds exporting and compiling one commit. The compile
// takes about 20 s when the go build cache already holds the dependencies
// (it does after a build of the current tree); this only bounds a hang.
const buildAtTimeout = 3 * time.Minute

// BuildAt builds the three binaries as they were at commit in the git
// repository repo, into dir, and returns their paths. A dir that already
// holds all three is returned as is, so dir works as a cache: name it
// after the commit. ldflags is passed to go build's -ldflags ("" for none);
// a cached dir keeps whatever ldflags it was built with.
//
// The commit's tree is exported with git archive into a temporary
// directory, removed afterwards, so the repository's work trees and index
// are untouched. The binaries are linked into a sibling of dir and renamed
// into place, so an interrupted build never leaves a dir that looks
// complete. Files git ignores (the web console's bundle) are not in the
// export: the broker is built without its console assets.
func BuildAt(repo, commit, dir, ldflags string) (Paths, error) {
	if p := In(dir); complete(p) {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildAtTimeout)
	defer cancel()
	full, err := resolveCommit(ctx, repo, commit)
	if err != nil {
		return Paths{}, err
	}
	src, err := os.MkdirTemp("", "readymesh-src-")
	if err != nil {
		return Paths{}, fmt.Errorf("build at %s: %w", commit, err)
	}
	defer os.RemoveAll(src)
	if err := exportTree(ctx, repo, full, src); err != nil {
		return Paths{}, fmt.Errorf("build at %s: %w", commit, err)
	}
	if err := buildInto(ctx, src, dir, ldflags); err != nil {
		return Paths{}, fmt.Errorf("build at %s: %w", commit, err)
	}
	return In(dir), nil
}

// complete reports whether all three binaries exist as regular files.
func complete(p Paths) bool {
	for _, f := range []string{p.Broker, p.Sessiond, p.Meshctl} {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// resolveCommit returns commit's full hash in repo, or an error wrapping
// ErrNoCommit that says why there is none.
func resolveCommit(ctx context.Context, repo, commit string) (string, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return "", fmt.Errorf("%w %s: no git command on PATH", ErrNoCommit, commit)
	}
	out, err := exec.CommandContext(ctx, gitBin, "-C", repo, "rev-parse", "--verify", "--quiet",
		commit+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("%w %s in %s (a checkout without its history, such as a tarball or a shallow clone): git rev-parse: %v",
			ErrNoCommit, commit, repo, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildInto compiles the module in src into dir, through a temporary
// sibling of dir renamed into place once the build succeeded.
func buildInto(ctx context.Context, src, dir, ldflags string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".partial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	args := []string{"build", "-o", tmp + string(filepath.Separator)}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, "./broker/cmd/broker", "./sessiond/cmd/sessiond", "./peer/cmd/meshctl")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	// A go.work above the temporary directory must not pull in other
	// modules.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	// MkdirTemp made tmp private; the cache is as readable as bin/.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return moveIntoPlace(tmp, dir)
}

// moveIntoPlace renames the finished build tmp to dir. A dir left by an
// interrupted run is replaced; one completed meanwhile by another run is
// kept.
func moveIntoPlace(tmp, dir string) error {
	if err := os.Rename(tmp, dir); err == nil {
		return nil
	}
	if complete(In(dir)) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
