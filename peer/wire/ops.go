package wire

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Technician operations (Request.Op) and their arguments and results.
const (
	OpWhoAmI          = "whoami"           // no args → Technician
	OpClientsCreate   = "clients.create"   // ClientArgs → Client (admin)
	OpClientsList     = "clients.list"     // no args → []Client
	OpTokensCreate    = "tokens.create"    // TokenArgs → TokenResult (admin)
	OpTechniciansAdd  = "technicians.add"  // TechnicianArgs → TechnicianResult (admin)
	OpTechniciansList = "technicians.list" // no args → []Technician (admin)
	OpMachines        = "machines"         // MachinesArgs → []Card
	OpShow            = "show"             // ShowArgs → Card with snapshot and history
	OpBrokers         = "brokers"          // no args → []BrokerMember
)

// BrokerMember is one broker of the cluster as a technician sees it.
type BrokerMember struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	// State is the gossip view: alive, suspect, dead or left.
	State       string   `json:"state"`
	PeerID      string   `json:"peer_id,omitempty"`
	HTTP        string   `json:"http_addr,omitempty"`
	GossipAddr  string   `json:"gossip_addr,omitempty"`
	Bridge      []string `json:"bridge_addrs,omitempty"`
	Agents      int      `json:"agents"`         // agents bridged to it now; a technician that is not an admin counts only its own clients'
	Technicians int      `json:"technicians"`    // technicians bridged to it now
	Self        bool     `json:"self,omitempty"` // the broker that answered
	// Version is the broker's release and protocol as its bridge host
	// announces them ("0.2.0 protocol 1"): "" until the answering broker
	// has met it, and "before 0.2.0" for a broker of a release that did
	// not announce one.
	Version string `json:"version,omitempty"`
}

// Client is a customer of the MSP: a group of machines.
type Client struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Machines  int       `json:"machines"`
}

// ClientArgs names a client.
type ClientArgs struct {
	Name string `json:"name"`
}

// Validate implements the Decode contract.
func (a *ClientArgs) Validate() error { return ValidName("client name", a.Name) }

// TokenArgs asks for an enrolment token.
type TokenArgs struct {
	Client string `json:"client"`
	Uses   int    `json:"uses"`  // zero means 1
	TTLSec int64  `json:"ttl_s"` // zero means 24 hours
}

// Validate implements the Decode contract.
func (a *TokenArgs) Validate() error {
	if err := ValidName("client", a.Client); err != nil {
		return err
	}
	if a.Uses < 0 || a.Uses > 100_000 {
		return errors.New("uses must be between 1 and 100000")
	}
	if a.TTLSec < 0 || a.TTLSec > 366*24*3600 {
		return errors.New("ttl must be between 1s and 366 days")
	}
	return nil
}

// TokenResult is a new enrolment token.
type TokenResult struct {
	Token     string    `json:"token"`
	Client    string    `json:"client"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session modes a technician may be allowed.
const (
	ModeReadOnly    = "read-only"
	ModeInteractive = "interactive"
	ModeElevated    = "elevated"
)

// TechnicianArgs describes a new technician.
type TechnicianArgs struct {
	Name    string   `json:"name"`
	Clients []string `json:"clients"`
	Modes   []string `json:"modes"`
}

// Validate implements the Decode contract.
func (a *TechnicianArgs) Validate() error {
	if err := ValidName("technician name", a.Name); err != nil {
		return err
	}
	if len(a.Clients) == 0 {
		return errors.New("a technician needs at least one client")
	}
	for _, c := range a.Clients {
		if err := ValidName("client", c); err != nil {
			return err
		}
	}
	if len(a.Modes) == 0 {
		return errors.New("a technician needs at least one mode")
	}
	for _, m := range a.Modes {
		switch m {
		case ModeReadOnly, ModeInteractive, ModeElevated:
		default:
			return errors.New("unknown mode " + m + " (read-only, interactive, elevated)")
		}
	}
	return nil
}

// TechnicianResult is a new technician and its one-time login token.
type TechnicianResult struct {
	Technician Technician `json:"technician"`
	LoginToken string     `json:"login_token"`
	ExpiresAt  time.Time  `json:"expires_at"`
}

// MachinesArgs filters the machine list. Zero values match everything.
type MachinesArgs struct {
	Client        string `json:"client,omitempty"`
	Readiness     string `json:"readiness,omitempty"`
	Online        *bool  `json:"online,omitempty"`
	PendingUpdate string `json:"pending_update,omitempty"`
	// For picks machines fit for a kind of work: ForQuickFix or
	// ForMaintenance.
	For string `json:"for,omitempty"`
}

// Dispatch helpers (MachinesArgs.For).
const (
	// ForQuickFix: ready, reachable now, no approval pending, not busy.
	ForQuickFix = "quick-fix"
	// ForMaintenance: reachable now, nobody logged in.
	ForMaintenance = "maintenance"
)

// ShowArgs names one machine by name or ID.
type ShowArgs struct {
	Machine string `json:"machine"`
}

// Validate implements the Decode contract.
func (a *ShowArgs) Validate() error {
	if a.Machine == "" {
		return errors.New("machine is empty")
	}
	return nil
}

// OpWaitOnline waits until a machine is reachable: WaitArgs → Card.
const OpWaitOnline = "wait.online"

// WaitArgs names a machine and how long to wait for it.
type WaitArgs struct {
	Machine    string `json:"machine"`
	TimeoutSec int    `json:"timeout_s"`
}

// Validate implements the Decode contract.
func (a *WaitArgs) Validate() error {
	if a.Machine == "" {
		return errors.New("machine is empty")
	}
	if a.TimeoutSec < 1 || a.TimeoutSec > 3600 {
		return errors.New("timeout must be between 1s and 1h")
	}
	return nil
}

// OpAlerts lists open alerts: no args → []Alert.
const OpAlerts = "alerts"

// Alert cadences: reachability alerts watch the live overlay, readiness
// alerts the stored state; they open and resolve on their own.
const (
	CadenceReachability = "reachability"
	CadenceReadiness    = "readiness"
)

// Alert kinds.
const (
	AlertOffline        = "offline"          // reachability: offline longer than the threshold
	AlertCheckInOverdue = "checkin-overdue"  // readiness: no check-in for too many intervals
	AlertAgentBehind    = "agent-behind"     // readiness: agent older than the release
	AlertUpdates        = "pending-updates"  // readiness: too many, or too old
	AlertNeverCheckedIn = "never-checked-in" // readiness: enrolled, silent since
)

// Alert is one open (or, in a webhook, just resolved) alert.
type Alert struct {
	ID       string     `json:"id"` // machine ID/kind
	Kind     string     `json:"kind"`
	Cadence  string     `json:"cadence"`
	Machine  string     `json:"machine"` // client/name
	Client   string     `json:"client"`
	Since    time.Time  `json:"since"`
	Detail   string     `json:"detail"`
	Resolved *time.Time `json:"resolved,omitempty"`
}

// AlertEvent is what the webhook receives, one POST per change.
type AlertEvent struct {
	Event  string `json:"event"` // opened or resolved
	Alert  Alert  `json:"alert"`
	Broker string `json:"broker"`
}

// Job is a queued piece of work as technicians see it.
type Job struct {
	ID              string    `json:"id"`
	Machine         string    `json:"machine"` // client/name
	MachineID       string    `json:"machine_id"`
	Mode            string    `json:"mode"`
	State           string    `json:"state"` // queued, waiting-for-consent, running, done, failed, expired, cancelled
	CreatedBy       string    `json:"created_by"`
	CreatedAt       time.Time `json:"created_at"`
	Expires         time.Time `json:"expires"`
	RequiresConsent bool      `json:"requires_consent,omitempty"`
	Strict          bool      `json:"strict,omitempty"`
	PlannedSeq      uint64    `json:"planned_seq"`
	Script          string    `json:"script,omitempty"`
	// Shell runs the script: powershell, cmd or sh; empty is the
	// machine's default (PowerShell on Windows, sh elsewhere).
	Shell    string     `json:"shell,omitempty"`
	Broker   string     `json:"broker,omitempty"`
	ExitCode *int       `json:"exit_code,omitempty"`
	Output   string     `json:"output,omitempty"`
	Session  string     `json:"session,omitempty"`
	Warning  string     `json:"warning,omitempty"`
	Error    string     `json:"error,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Queue operations.
const (
	OpQueueAdd    = "queue.add"    // QueueArgs → []Job
	OpQueueList   = "queue.list"   // QueueListArgs → []Job
	OpQueueShow   = "queue.show"   // JobArgs → Job
	OpQueueCancel = "queue.cancel" // JobArgs → Job
)

// QueueArgs queues a script for every machine selected: by name, by
// client, by pending update or by readiness state (at least one).
type QueueArgs struct {
	Machines        []string `json:"machines,omitempty"`
	Client          string   `json:"client,omitempty"`
	PendingUpdate   string   `json:"pending_update,omitempty"`
	Readiness       string   `json:"readiness,omitempty"`
	Script          string   `json:"script"`
	Shell           string   `json:"shell,omitempty"` // see Job.Shell
	Mode            string   `json:"mode"`
	ExpiresSec      int64    `json:"expires_s"`
	RequiresConsent bool     `json:"requires_consent,omitempty"`
	Strict          bool     `json:"strict,omitempty"`
}

// Validate implements the Decode contract.
func (a *QueueArgs) Validate() error {
	if len(a.Machines) == 0 && a.Client == "" && a.PendingUpdate == "" && a.Readiness == "" {
		return errors.New("select machines: --machine, --client, --pending-update or --readiness")
	}
	if a.Script == "" || len(a.Script) > 64<<10 {
		return errors.New("the script must be 1 byte to 64 KiB")
	}
	if err := ValidShell(a.Shell); err != nil {
		return err
	}
	if a.Mode != ModeInteractive && a.Mode != ModeElevated {
		return fmt.Errorf("mode %q: queued work runs interactive or elevated", a.Mode)
	}
	if a.ExpiresSec < 1 || a.ExpiresSec > 90*24*3600 {
		return errors.New("expiry must be between 1s and 90 days")
	}
	return nil
}

// QueueListArgs filters the queue.
type QueueListArgs struct {
	Machine string `json:"machine,omitempty"`
	State   string `json:"state,omitempty"`
}

// JobArgs names a job (its ID or first digits).
type JobArgs struct {
	ID string `json:"id"`
}

// Validate implements the Decode contract.
func (a *JobArgs) Validate() error {
	if len(a.ID) < 6 || len(a.ID) > 32 {
		return errors.New("job: give at least its first 6 digits")
	}
	return nil
}

// ProtoJob: broker → agent, one JobRequest and one JobReply per stream.
const ProtoJob protocol.ID = "/readymesh/job/1.0.0"

// JobRequest asks the agent to run a queued job under a grant the broker
// issued to itself (the queue's technician name is in the grant).
type JobRequest struct {
	Grant           SignedGrant `json:"grant"`
	Job             string      `json:"job"`
	Script          string      `json:"script"`
	Shell           string      `json:"shell,omitempty"` // see Job.Shell
	RequiresConsent bool        `json:"requires_consent,omitempty"`
	// Expires: the agent does not start the job after it (a consent
	// wait may take it there).
	Expires time.Time `json:"expires,omitzero"`
	// QueryOnly asks what the agent knows of the job without running it.
	QueryOnly bool `json:"query_only,omitempty"`
	// Update, when set, makes the job an agent update: Script is empty
	// and the agent installs the release instead of running a script.
	Update *UpdateOrder `json:"update,omitempty"`
}

// Validate implements the Decode contract.
func (r *JobRequest) Validate() error {
	if r.Update != nil {
		if len(r.Job) != 32 || r.Script != "" {
			return errors.New("job request: bad job ID, or a script with an update")
		}
		return r.Update.Validate()
	}
	if len(r.Job) != 32 || r.Script == "" || len(r.Script) > 64<<10 {
		return errors.New("job request: bad job ID or script")
	}
	return ValidShell(r.Shell)
}

// JobReply is how the job went. Replayed is set when the agent had run
// this job before and answers from its record instead of running it again.
type JobReply struct {
	Error    *Error `json:"error,omitempty"`
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
	Replayed bool   `json:"replayed,omitempty"`
}

// OpConsoleLogin asks for a one-time sign-in link to the web console of
// the broker asked: no args → ConsoleLogin. The technician's key is the
// credential; the browser gets a session cookie for that technician.
const OpConsoleLogin = "console.login"

// ConsoleLogin is a one-time sign-in code for the web console.
type ConsoleLogin struct {
	Code    string    `json:"code"`
	URL     string    `json:"url"` // the console, with the code in its fragment
	Expires time.Time `json:"expires"`
}
