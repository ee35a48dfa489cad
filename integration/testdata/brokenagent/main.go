// Command brokenagent stands in for a broken release of sessiond in the
// update tests: it exits at start, as a build with a fatal bug in its
// start-up would, before it could check in. It is signed and published
// like any release, so only the agent's own watch can undo it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "panic: this build fails at start (the update tests' broken release)")
	os.Exit(2)
}
