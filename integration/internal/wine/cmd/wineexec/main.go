// Command wineexec runs a Windows test binary under Wine, for
// `GOOS=windows go test -exec wineexec`: it makes the shared Wine prefix
// ready (package wine), runs the binary on a terminal, passes its output
// on and exits with its status.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/readymesh/readymesh/integration/internal/wine"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wineexec PROGRAM.exe [ARGS…]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prefix := wine.DefaultPrefix()
	if err := wine.Ensure(ctx, prefix); err != nil {
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
	cmd, err := wine.Command(ctx, prefix, os.Args[1], os.Args[2:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
	run, err := wine.Start(cmd, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
	err = run.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	default:
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
}
