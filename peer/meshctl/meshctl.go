// Package meshctl is the technician's command line: log in to a broker,
// administer clients, tokens and technicians, and read the fleet's machine
// cards. The meshctl binary is a thin main around Run.
//
// Every list and show command takes --json; errors go to stderr with a
// non-zero exit status. Human output keeps the console's three layers
// apart: a machine's readiness state and its reachability dot stand side by
// side, never merged into one.
package meshctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// ErrUsage marks a command line that could not be understood.
var ErrUsage = errors.New("usage")

const usage = `usage: meshctl COMMAND [flags]

  login --credential FILE_OR_TOKEN [--broker ADDR]   log in (ADDR: broker.json path or multiaddr)
  whoami                                              show the logged-in technician
  console [--json]                                    a one-time sign-in link to the broker's web console (good for 2 minutes)
  machines [--client C] [--readiness STATE] [--online|--offline] [--pending-update ID] [--for quick-fix|maintenance] [--json]
  show MACHINE [--json]                               one machine card with its full stored state
  clients create NAME | clients ls [--json]
  tokens create --client NAME [--uses N] [--ttl D] [--json]
  technicians add NAME --clients A,B --modes read-only,interactive,elevated [--json]
  technicians ls [--json]
  technicians disable|enable|remove NAME              end (or restore) a technician's access on every broker
  tokens ls [--json] | tokens revoke TOKEN_ID         enrolment tokens; a revoked one enrols nobody
  clients remove NAME [--force]                       refused while it has machines, unless --force removes them too
  machines remove MACHINE                             take a machine out of the fleet: its agent is refused, its queued jobs cancelled
  brokers [--json]                                    the cluster's brokers and their state
  connect MACHINE [--mode M] [--transport auto|quic|relay|webrtc] [--send SIZE] [--hold D] [--json]
                                                      open a live session: a terminal, or with --hold its path as it changes
  exec MACHINE [--mode interactive|elevated] [-i] -- COMMAND [ARGS…]
                                                      run a command; its output streams back, its exit status is meshctl's
  wait MACHINE --online [--timeout 10m]               returns when the machine is reachable
  queue add (--machine M…|--client C|--pending-update ID|--readiness S) --script FILE
            [--mode interactive|elevated] [--expires 72h] [--requires-consent] [--strict] [--json]
  queue ls [--machine M] [--state S] [--json] | queue show JOB [--json] | queue cancel JOB
  alerts [--json]                                     open alerts: readiness (stored state) and reachability (live)
  explain MACHINE                                     stored state, what is likely wrong, and whether we can connect now
  history MACHINE [--json]                            sessions and commands, from stored state
  transcript SESSION [--out FILE]                     a session's terminal recording (asciicast v2)
  audit [--machine M] [--session S] [--limit 100] [--json]   the broker's audit log, newest first
  consent MACHINE --policy never|window|session [--window 8h]   the machine's consent policy (admin)
  policy set --on-metered quiet|normal [--quiet-interval 6h] (--client C | MACHINE) [--json]
                                                      the fleet's metered-connection policy for agents (admin); a machine's own wins over its client's
  policy clear (--client C | MACHINE) [--json] | policy list [--json]
  cp [--mode M] SRC DST                               copy a file; one side is MACHINE:/path; SHA-256 checked, resumable
  version [--json]                                    this build's version, commit, Go and protocol versions
  releases keygen --out DIR [--password-file F] [--unencrypted] [--json]
                                                      a release key pair: DIR/release.key (encrypted; keep it off the brokers) and DIR/release.pub
  releases sign DIR --key FILE --version V [--min-agent V] [--notes TEXT] [--next-key FILE.pub] [--password-file F] [--json]
                                                      hash DIR's sessiond-GOOS-GOARCH[.exe] files, write manifest.json and manifest.json.minisig
  releases trust FILE.pub | releases key [--json]     the fleet's release key (admin): agents enrolled from then on pin it
  releases publish DIR [--json]                       upload a signed release (resumable) and publish it on every broker
  releases ls [--json] | releases show VERSION [--json] | releases withdraw VERSION
  rollout start VERSION (--client C…|--all) [--canary 25%] [--health-window 15m] [--max-parallel K] [--fail 10%]
                [--rollback] [--requires-consent] [--json]
                                                      update agents: the canary wave first, the rest once it is healthy
  rollout ls [--json] | rollout status ID [--json] | rollout pause|resume|abort ID
  ping MACHINE [-c N] [--interval D] [--transport T] [--until-direct] [--json]
                                                      round trips over a session, each with its path

The release key's password: --password-file, else $READYMESH_RELEASE_PASSWORD.
State lives in $READYMESH_HOME, else the user config directory. Sessions bind
their UDP socket to $READYMESH_SESSION_ADDR when set (e.g. a fixed port).`

// env is what a command runs with.
type env struct {
	ctx    context.Context
	out    io.Writer
	home   string
	client *tech.Client // opened lazily by connect
}

// Run runs meshctl with args (without the program name).
func Run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	home, err := tech.Home()
	if err != nil {
		return err
	}
	e := &env{ctx: ctx, out: stdout, home: home}
	defer e.close()
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (cmd == "clients" || cmd == "tokens" || cmd == "technicians" || cmd == "queue" ||
		cmd == "releases" || cmd == "rollout" || cmd == "policy" ||
		cmd == "machines" && rest[0] == "remove") {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	f, ok := commands[cmd]
	if !ok {
		return fmt.Errorf("%w: unknown command %q\n%s", ErrUsage, cmd, usage)
	}
	return f(e, rest)
}

var commands = map[string]func(*env, []string) error{
	"login":               (*env).login,
	"whoami":              (*env).whoami,
	"console":             (*env).consoleCmd,
	"machines":            (*env).machines,
	"show":                (*env).show,
	"clients create":      (*env).clientsCreate,
	"clients ls":          (*env).clientsList,
	"tokens create":       (*env).tokensCreate,
	"technicians add":     (*env).techniciansAdd,
	"technicians ls":      (*env).techniciansList,
	"technicians disable": technicianSet("disable", wire.OpTechniciansDisable),
	"technicians enable":  technicianSet("enable", wire.OpTechniciansEnable),
	"technicians remove":  technicianSet("remove", wire.OpTechniciansRemove),
	"tokens ls":           (*env).tokensList,
	"tokens revoke":       (*env).tokensRevoke,
	"clients remove":      (*env).clientsRemove,
	"machines remove":     (*env).machinesRemove,
	"brokers":             (*env).brokers,
	"connect":             (*env).connectCmd,
	"exec":                (*env).execCmd,
	"cp":                  (*env).cpCmd,
	"consent":             (*env).consentCmd,
	"audit":               (*env).audit,
	"wait":                (*env).waitCmd,
	"explain":             (*env).explain,
	"alerts":              (*env).alertsCmd,
	"queue add":           (*env).queueAdd,
	"queue ls":            (*env).queueList,
	"queue show":          (*env).queueShow,
	"queue cancel":        (*env).queueCancel,
	"history":             (*env).history,
	"transcript":          (*env).transcript,
	"ping":                (*env).pingCmd,
	"version":             (*env).version,
	"releases keygen":     (*env).releasesKeygen,
	"releases sign":       (*env).releasesSign,
	"releases trust":      (*env).releasesTrust,
	"releases key":        (*env).releasesKey,
	"releases publish":    (*env).releasesPublish,
	"releases ls":         (*env).releasesList,
	"releases show":       (*env).releasesShow,
	"releases withdraw":   (*env).releasesWithdraw,
	"rollout start":       (*env).rolloutStart,
	"rollout ls":          (*env).rolloutList,
	"rollout status":      (*env).rolloutStatus,
	"rollout pause":       rolloutSet("pause", wire.OpRolloutPause),
	"rollout resume":      rolloutSet("resume", wire.OpRolloutResume),
	"rollout abort":       rolloutSet("abort", wire.OpRolloutAbort),
	"policy set":          (*env).policySet,
	"policy clear":        (*env).policyClear,
	"policy list":         (*env).policyList,
	"policy ls":           (*env).policyList,
}

// version prints this build's version; it needs no login.
func (e *env) version(args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON: module version, commit, Go version, protocol versions")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: version takes no arguments, got %q", ErrUsage, fs.Args())
	}
	return buildinfo.Write(e.out, "meshctl", *asJSON)
}

func (e *env) connect() (*tech.Client, error) {
	if e.client != nil {
		return e.client, nil
	}
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	c, err := tech.Open(ctx, e.home)
	if err != nil {
		return nil, err
	}
	e.client = c
	return c, nil
}

func (e *env) close() {
	if e.client != nil {
		e.client.Close()
	}
}

func (e *env) do(op string, args, result any) error {
	c, err := e.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	return c.Do(ctx, op, args, result)
}

// parse parses flags that may come before or after positional arguments,
// and checks the number of positionals.
func parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUsage, fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != len(positional) {
		want := "no arguments"
		if len(positional) > 0 {
			want = strings.Join(positional, " ")
		}
		return nil, fmt.Errorf("%w: %s takes %s", ErrUsage, fs.Name(), want)
	}
	return pos, nil
}
