package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// rewriteToken decodes an enrolment token, lets edit change it, and encodes
// it again: a well-formed token the broker never issued.
func rewriteToken(t *testing.T, token string, edit func(*wire.Token)) string {
	t.Helper()
	tok, err := wire.ParseToken(wire.KindEnroll, token)
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	edit(&tok)
	return tok.String()
}

// TestEnrolmentRefusals tries enrolments that must be refused. Each must
// exit non-zero with a clear message, leave every broker's machine list as
// it was, leave the agent's state directory unenrolled, and use up nothing:
// a token refused for another reason keeps its remaining uses.
func TestEnrolmentRefusals(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	alpha := startBroker(t, base, "alpha", 0)
	beta := startBroker(t, base, "beta", 0)
	adminA, adminB := alpha.admin(base), beta.admin(base)
	adminA.ok("clients", "create", "acme")
	adminA.ok("clients", "create", "globex")
	adminB.ok("clients", "create", "acme")
	seed := enroll(t, base, adminA.token("acme", 1, time.Hour).Token, "seed", "")

	betaUp := true
	// fleet returns the machine IDs of every running broker.
	fleet := func(t *testing.T) map[string][]string {
		t.Helper()
		m := map[string][]string{"alpha": ids(adminA.machines())}
		if betaUp {
			m["beta"] = ids(adminB.machines())
		}
		return m
	}
	// Tokens some cases share between prepare, attempt and after.
	var usedUp, twoUses, betaTok, betaTok2, betaDown, notSpent wire.TokenResult

	cases := []struct {
		name    string
		prepare func(t *testing.T) // runs before the fleet is recorded
		attempt func(t *testing.T, dir string) result
		want    string // on stderr, lower case
		// unenrolled is true when dir must be left unenrolled (false when
		// the case reuses an enrolled directory).
		unenrolled bool
		after      func(t *testing.T, dir string) // checks that nothing was used up
	}{{
		name: "unknown token",
		attempt: func(t *testing.T, dir string) result {
			genuine := adminA.token("acme", 5, time.Hour).Token
			forged := rewriteToken(t, genuine, func(tok *wire.Token) { tok.Secret = wire.NewSecret() })
			return tryEnroll(t, forged, "ghost", dir)
		},
		want:       "unknown token",
		unenrolled: true,
	}, {
		name: "expired token",
		attempt: func(t *testing.T, dir string) result {
			tr := adminA.token("acme", 5, time.Second)
			// Wait for the expiry the broker reported (a deadline, not a
			// condition that could be polled without using the token).
			time.Sleep(time.Until(tr.ExpiresAt) + 100*time.Millisecond)
			return tryEnroll(t, tr.Token, "late", dir)
		},
		want:       "token expired",
		unenrolled: true,
	}, {
		name: "used-up token",
		prepare: func(t *testing.T) {
			usedUp = adminA.token("acme", 1, time.Hour)
			enroll(t, base, usedUp.Token, "first-user", "")
		},
		attempt: func(t *testing.T, dir string) result {
			return tryEnroll(t, usedUp.Token, "second-user", dir)
		},
		want:       "token used up",
		unenrolled: true,
	}, {
		name: "name taken in the client",
		prepare: func(t *testing.T) {
			twoUses = adminA.token("acme", 2, time.Hour)
			enroll(t, base, twoUses.Token, "dup", "")
		},
		attempt: func(t *testing.T, dir string) result {
			return tryEnroll(t, twoUses.Token, "dup", dir)
		},
		want:       "name already taken",
		unenrolled: true,
		after: func(t *testing.T, dir string) {
			// The same name in another client is fine.
			other := enroll(t, base, adminA.token("globex", 1, time.Hour).Token, "dup", "")
			if other.client != "globex" {
				t.Errorf("dup enrolled in client %s, want globex", other.client)
			}
			// The refusal used nothing: the two-use token still has its
			// second use, and the same state directory can enrol.
			if r := tryEnroll(t, twoUses.Token, "dup-2", dir); r.err != nil {
				t.Errorf("second use of a 2-use token after a refused name: %v", r)
			}
			// And it had exactly two.
			if r := tryEnroll(t, twoUses.Token, "dup-3", filepath.Join(dir, "third")); r.err == nil || !strings.Contains(r.stderr, "used up") {
				t.Errorf("third use of a 2-use token: want used up, got %v", r)
			}
		},
	}, {
		name: "state directory already enrolled",
		prepare: func(t *testing.T) {
			notSpent = adminA.token("acme", 1, time.Hour)
		},
		attempt: func(t *testing.T, _ string) result {
			return tryEnroll(t, notSpent.Token, "again", seed.dir)
		},
		want: "already enrolled",
		after: func(t *testing.T, _ string) {
			enroll(t, base, notSpent.Token, "after-local-refusal", "")
		},
	}, {
		name: "invalid machine name",
		attempt: func(t *testing.T, dir string) result {
			return tryEnroll(t, adminA.token("acme", 1, time.Hour).Token, "bad name!", dir)
		},
		want:       "machine name",
		unenrolled: true,
	}, {
		name: "token for another broker dialled at this one",
		prepare: func(t *testing.T) {
			betaTok = adminB.token("acme", 1, time.Hour)
		},
		attempt: func(t *testing.T, dir string) result {
			return tryEnroll(t, betaTok.Token, "stray", dir, "--broker", alpha.infoPath())
		},
		want:       "issued by broker " + strings.ToLower(beta.info.PeerID),
		unenrolled: true,
		after: func(t *testing.T, _ string) {
			// The token kept its one use on its own broker.
			a := enroll(t, base, betaTok.Token, "stray-home", "")
			if c, ok := cardOf(adminB.machines(), a.id); !ok || c.Name != "stray-home" {
				t.Errorf("machine enrolled with beta's token is not on beta")
			}
		},
	}, {
		name: "token naming another broker at this broker's address",
		prepare: func(t *testing.T) {
			betaTok2 = adminB.token("acme", 1, time.Hour)
		},
		attempt: func(t *testing.T, dir string) result {
			// A token that says "broker beta, at alpha's address": the
			// pinned identity must refuse alpha.
			misrouted := rewriteToken(t, betaTok2.Token, func(tok *wire.Token) {
				tok.Broker.Addrs = nil
				for _, a := range alpha.info.Addrs {
					addr, _, _ := strings.Cut(a, "/p2p/")
					tok.Broker.Addrs = append(tok.Broker.Addrs, addr+"/p2p/"+beta.info.PeerID)
				}
			})
			return tryEnroll(t, misrouted, "misrouted", dir)
		},
		want:       "peer id mismatch",
		unenrolled: true,
		after: func(t *testing.T, _ string) {
			enroll(t, base, betaTok2.Token, "misrouted-home", "")
		},
	}, {
		name: "token for a broker that is down",
		prepare: func(t *testing.T) {
			betaDown = adminB.token("acme", 1, time.Hour)
			beta.stop()
			betaUp = false
		},
		attempt: func(t *testing.T, dir string) result {
			return tryEnroll(t, betaDown.Token, "orphan", dir)
		},
		want:       "cannot reach broker",
		unenrolled: true,
	}}

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, fmt.Sprintf("refused-%d", i))
			if tc.prepare != nil {
				tc.prepare(t)
			}
			before := fleet(t)
			start := time.Now()
			r := tc.attempt(t, dir)
			took := time.Since(start)
			if r.err == nil || r.exitCode() <= 0 {
				t.Fatalf("enrolment was not refused: %v", r)
			}
			if msg := strings.ToLower(r.stderr); !strings.Contains(msg, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, r.stderr)
			}
			t.Logf("refused in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			if after := fleet(t); !mapsEqual(before, after) {
				t.Errorf("a refused enrolment changed the machine lists:\nbefore %v\nafter  %v", before, after)
			}
			if tc.unenrolled {
				run := runCmd(t, cmdTimeout, nil, bins.sessiond, "run", "--state", dir)
				if run.err == nil || !strings.Contains(run.stderr, "not enrolled") {
					t.Errorf("state directory of a refused enrolment: sessiond run should say not enrolled, got %v", run)
				}
			}
			if tc.after != nil {
				tc.after(t, dir)
			}
		})
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
