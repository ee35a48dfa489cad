package collect

import "slices"

// Remote Desktop Services session states (WTS_CONNECTSTATE_CLASS).
const (
	wtsActive       = 0
	wtsDisconnected = 4
)

// maxWTSSessions bounds the sessions Users reads; a terminal server has
// a few hundred at most.
const maxWTSSessions = 4096

// maxUserName bounds a reported DOMAIN\user name, in bytes. Windows
// limits user names to 20 characters and domain names to 15 (NetBIOS) or
// a DNS name.
const maxUserName = 300

// wtsSession is what Users reads of one session.
type wtsSession struct {
	ID     uint32
	State  uint32
	User   string
	Domain string
}

// sessionUsers returns the people logged on: the users of active
// sessions (at the console or over Remote Desktop) and of disconnected
// ones (logged on, screen locked away or RDP window closed: the user's
// programs still run). Names are DOMAIN\user, as Windows shows them, since
// a local and a domain account may share a user name; sorted and unique.
// Sessions without a user (the services session, the logon screen) are
// left out.
func sessionUsers(ss []wtsSession) []string {
	users := []string{}
	for _, s := range ss[:min(len(ss), maxWTSSessions)] {
		if s.State != wtsActive && s.State != wtsDisconnected {
			continue
		}
		user := cleanText(s.User, maxUserName)
		if user == "" {
			continue
		}
		if domain := cleanText(s.Domain, maxUserName); domain != "" {
			user = cleanText(domain+`\`+user, maxUserName)
		}
		users = append(users, user)
	}
	slices.Sort(users)
	return slices.Compact(users)
}
