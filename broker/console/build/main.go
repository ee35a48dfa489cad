// Command build bundles the web console's browser app into
// broker/console/dist, where package console embeds it into the broker.
//
// It runs esbuild through its Go API rather than as a separate tool, so the
// bundling is part of the Go build: `make build` and `make demo` run
// `go run ./broker/console/build` before compiling the broker, and nobody
// has to remember a manual step or install a bundler. The only thing beyond
// Go is npm, which fetches the pinned xterm.js packages into web/node_modules
// when they are missing or older than web/package-lock.json.
//
// Output: dist/app.js (web/src/main.js and what it imports, minified),
// dist/app.css (web/src/style.css with xterm.css inlined) and
// dist/index.html (copied). index.html is written last, so a broker
// embedding a dist with index.html has the other two as well.
//
// Usage, from the repository root:
//
//	go run ./broker/console/build [-dir broker/console]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

func main() {
	dir := flag.String("dir", "broker/console", "the console package's `dir`ectory (holds web/ and dist/)")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "console build:", err)
		os.Exit(1)
	}
}

// run installs the npm packages if needed, bundles the app and copies the
// page.
func run(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	web := filepath.Join(dir, "web")
	dist := filepath.Join(dir, "dist")
	if _, err := os.Stat(filepath.Join(web, "src", "main.js")); err != nil {
		return fmt.Errorf("%s is not the console package (no web/src/main.js); run from the repository root or pass -dir", dir)
	}
	if err := ensureModules(web); err != nil {
		return err
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return err
	}
	if err := bundle(web, filepath.Join(web, "src", "main.js"), filepath.Join(dist, "app.js")); err != nil {
		return err
	}
	if err := bundle(web, filepath.Join(web, "src", "style.css"), filepath.Join(dist, "app.css")); err != nil {
		return err
	}
	return copyFile(filepath.Join(web, "src", "index.html"), filepath.Join(dist, "index.html"))
}

// ensureModules runs `npm ci` in web when node_modules is missing or older
// than package-lock.json. npm ≥ 7 rewrites node_modules/.package-lock.json
// at every install, so its time says when node_modules was last brought in
// line with the lock file.
func ensureModules(web string) error {
	lock, err := os.Stat(filepath.Join(web, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("web/package-lock.json: %w", err)
	}
	installed, err := os.Stat(filepath.Join(web, "node_modules", ".package-lock.json"))
	if err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return errors.New("npm is needed to fetch xterm.js into broker/console/web/node_modules but is not installed: on Debian, apt-get install nodejs npm")
	}
	fmt.Fprintln(os.Stderr, "console build: npm ci in", web)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = web
	cmd.Stdout = os.Stderr // keep stdout clean for callers that read it
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w", web, err)
	}
	return nil
}

// bundle builds one entry point and its imports into outfile. JavaScript
// and CSS entries take the same options: esbuild picks the loader from the
// extension, and CSS @import of a package path resolves in node_modules.
func bundle(web, entry, outfile string) error {
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{entry},
		Outfile:           outfile,
		AbsWorkingDir:     web,
		Bundle:            true,
		Write:             true,
		Format:            api.FormatESModule,
		Platform:          api.PlatformBrowser,
		Target:            api.ES2020,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Sourcemap:         api.SourceMapNone,
		LegalComments:     api.LegalCommentsEndOfFile, // keep xterm.js's MIT notice
		Loader:            map[string]api.Loader{".css": api.LoaderCSS, ".js": api.LoaderJS},
		LogLevel:          api.LogLevelSilent, // messages are printed below, once
	})
	if len(res.Warnings) > 0 {
		printMessages(res.Warnings, api.WarningMessage)
	}
	if len(res.Errors) > 0 {
		printMessages(res.Errors, api.ErrorMessage)
		return fmt.Errorf("esbuild: %d error(s) bundling %s", len(res.Errors), filepath.Base(entry))
	}
	return nil
}

func printMessages(msgs []api.Message, kind api.MessageKind) {
	out := api.FormatMessages(msgs, api.FormatMessagesOptions{Kind: kind, TerminalWidth: 100})
	fmt.Fprint(os.Stderr, strings.Join(out, ""))
}

// copyFile copies src to dst through a temporary file, so dst is never seen
// half written.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
