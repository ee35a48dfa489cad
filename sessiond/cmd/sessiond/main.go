// Command sessiond is the readymesh agent: it enrols a machine, runs the
// agent daemon (also as a Windows service or a launchd daemon, which it
// installs) and talks to the running agent. See package cli.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/readymesh/readymesh/sessiond/cli"
	"github.com/readymesh/readymesh/sessiond/service"
)

func main() {
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	if err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var exit *cli.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code) // cli.Run said why on stderr
		}
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		if errors.Is(err, cli.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
