// Command meshctl is the readymesh technician CLI. See package meshctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/readymesh/readymesh/peer/meshctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := meshctl.Run(ctx, os.Args[1:], os.Stdout); err != nil {
		var exit *meshctl.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code) // the remote command's status; it said why
		}
		fmt.Fprintln(os.Stderr, "meshctl:", err)
		if errors.Is(err, meshctl.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
