package ipc

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Well-known Windows security identifiers.
const (
	SIDSystem = "S-1-5-18"     // LocalSystem, the account services run as
	SIDAdmins = "S-1-5-32-544" // BUILTIN\Administrators
)

// pipePrefix starts every control pipe's name.
const pipePrefix = `\\.\pipe\readymesh-sessiond-`

// PipeName is the name of the control pipe of the agent whose state
// directory is absDir, an absolute Windows path. Windows paths are case
// blind and take either slash, so every spelling of one directory gives
// one name; the name holds a hash rather than the path because a pipe
// name is limited to 256 characters and a path is not. The name must stay
// the same across versions: a newer sessiond talks to an older agent.
func PipeName(absDir string) string {
	p := strings.ToLower(strings.ReplaceAll(absDir, "/", `\`))
	for len(p) > 3 && strings.HasSuffix(p, `\`) { // keep a drive root's C:\
		p = strings.TrimSuffix(p, `\`)
	}
	sum := sha256.Sum256([]byte(p))
	return pipePrefix + hex.EncodeToString(sum[:8])
}

// PipeSDDL is the security descriptor of a control pipe created by the
// account owner (a SID string): owned by that account, with a protected
// DACL that grants full access to it, to SYSTEM and to Administrators, and
// to nobody else. An agent run as a service is LocalSystem, so its pipe
// admits SYSTEM and elevated administrators; one run by hand also admits
// its user, as the Unix socket admits its owner.
func PipeSDDL(owner string) string {
	sddl := "O:" + owner + "D:P(A;;GA;;;SY)(A;;GA;;;BA)"
	if owner != SIDSystem && owner != SIDAdmins {
		sddl += "(A;;GA;;;" + owner + ")"
	}
	return sddl
}

// TrustedOwner reports whether a dialler running as self may talk to a
// control pipe owned by owner (both SID strings). An agent's pipe is owned
// by its account (PipeSDDL): SYSTEM for the service, or the dialler
// itself. Administrators own objects their members create when Windows
// assigns the default owner, so they are trusted too. Any other owner is
// a process that took the name first.
func TrustedOwner(owner, self string) bool {
	return owner != "" && (owner == SIDSystem || owner == SIDAdmins || owner == self)
}
