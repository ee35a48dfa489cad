package cluster

import (
	"strings"
	"sync"
	"time"
)

// mlLog adapts memberlist's *log.Logger output to the Cluster's slog
// logger. Every line goes out at debug level with memberlist's own level as
// an attribute. Two kinds of lines mean more and are acted on:
//
//   - "Suspect X has failed, no acks received": memberlist has no event
//     for suspicion, so this line is how Members learns a probe failed.
//   - decryption failures: a broker with another gossip key (or none) is
//     talking to this one. memberlist logs them at its ERR level, among
//     routine noise; they become one warning per remote host a minute
//     that says what to check.
type mlLog struct {
	c *Cluster

	mu     sync.Mutex
	warned map[string]time.Time // mu guards; remote host → last warning
}

// keyWarnEvery rate-limits the wrong-key warning per remote host.
const keyWarnEvery = time.Minute

func (a *mlLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := "INFO"
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	a.c.log.Debug(line, "memberlist", level)

	switch {
	case strings.HasPrefix(line, "Suspect ") && strings.HasSuffix(line, " has failed, no acks received"):
		a.c.suspected(strings.TrimSuffix(strings.TrimPrefix(line, "Suspect "), " has failed, no acks received"))
	case isKeyMismatch(line) && fromAddr(line) != "":
		// Without a remote address it is this broker's own failed join,
		// which the join loop reports.
		a.keyMismatch(fromAddr(line), line)
	}
	return len(p), nil
}

// isKeyMismatch recognises memberlist's errors for gossip this broker
// could not decrypt, or could not because one side has no key.
func isKeyMismatch(s string) bool {
	return strings.Contains(s, "Decrypt packet failed") ||
		strings.Contains(s, "no installed keys could decrypt") ||
		strings.Contains(s, "remote state is not encrypted") ||
		strings.Contains(s, "encryption is not configured")
}

// fromAddr extracts the remote address memberlist appends as "from=ADDR".
func fromAddr(s string) string {
	i := strings.LastIndex(s, "from=")
	if i < 0 {
		return ""
	}
	return strings.Fields(s[i+len("from="):] + " ")[0]
}

func (a *mlLog) keyMismatch(from, detail string) {
	host := from
	if i := strings.LastIndexByte(from, ':'); i > 0 {
		host = from[:i]
	}
	now := time.Now()
	a.mu.Lock()
	if len(a.warned) > 1024 {
		clear(a.warned)
	}
	last, ok := a.warned[host]
	if !ok || now.Sub(last) >= keyWarnEvery {
		a.warned[host] = now
	}
	a.mu.Unlock()
	if ok && now.Sub(last) < keyWarnEvery {
		return
	}
	a.c.log.Warn("gossip from "+from+" could not be decrypted: wrong --gossip-key-file?",
		"from", from, "detail", detail)
}
