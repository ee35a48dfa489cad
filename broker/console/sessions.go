package console

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// iceServer is RTCIceServer as browsers take it.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ice answers what a browser needs before it gathers candidates: the
// broker's STUN server and, when it relays, TURN credentials for this
// technician.
func (c *Console) ice(w http.ResponseWriter, r *http.Request, a *authed) {
	writeJSON(w, http.StatusOK, map[string]any{"iceServers": c.browserICE(r, a.id)})
}

func (c *Console) browserICE(r *http.Request, techID peer.ID) []iceServer {
	out := []iceServer{}
	ua := c.deps.ICE.STUNAddr()
	if ua == nil {
		return out
	}
	host := ua.IP.String()
	if turn := c.deps.ICE.TURNHost(); turn != "" {
		host = turn
	} else if ua.IP.IsUnspecified() {
		// Reached on the address the browser used for this page.
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
	}
	hp := net.JoinHostPort(host, strconv.Itoa(ua.Port))
	out = append(out, iceServer{URLs: []string{"stun:" + hp}})
	if u, p := c.deps.ICE.TURNCredentials(techID.String()); u != "" {
		out = append(out, iceServer{URLs: []string{"turn:" + hp + "?transport=udp"}, Username: u, Credential: p})
	}
	return out
}

// sessionBody is what the browser sends to open a session.
type sessionBody struct {
	Machine string `json:"machine"`
	Mode    string `json:"mode"`
	SDP     string `json:"sdp"`
}

// openSession opens a WebRTC session from the browser: the same checks,
// grant, consent and audit as meshctl connect, with the browser's DTLS
// fingerprints bound into the grant in place of a technician signature.
func (c *Console) openSession(w http.ResponseWriter, r *http.Request, a *authed) {
	var body sessionBody
	if werr := readBody(w, r, maxSessionBody, &body, "{machine, mode, sdp}"); werr != nil {
		writeErr(w, werr)
		return
	}
	args := &wire.SessionArgs{Machine: body.Machine, Mode: body.Mode, Transport: wire.TransportWebRTC,
		Params: wire.PeerParams{SDP: body.SDP}}
	sr, werr := c.deps.Sessions.Request(r.Context(), session.Request{Tech: &a.tech, TechID: a.id, Args: args,
		Console: true, Check: func() ([]string, *wire.Error) { return checkBrowserOffer(args) }})
	// The request may have waited minutes for the person at the machine
	// to consent, past the write deadline Bounded gave it.
	writeWithin(w, c.cfg.WriteTimeout)
	if werr != nil {
		writeErr(w, werr)
		return
	}
	if sr.Redirect != nil {
		addr := sr.Redirect.HTTP
		if !strings.Contains(addr, "://") {
			addr = "http://" + addr
		}
		writeErr(w, wire.Errorf(wire.CodeUnavailable, "this machine is connected to broker %s: open its console at %s",
			sr.Redirect.Name, addr))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": sr.Session, "machine": sr.Machine, "name": sr.Name,
		"mode": args.Mode, "sdp": sr.Answer.SDP})
}

// checkBrowserOffer validates a browser's session request and returns
// its offer's DTLS fingerprints, which the grant binds.
func checkBrowserOffer(args *wire.SessionArgs) ([]string, *wire.Error) {
	if args.Machine == "" {
		return nil, wire.Errorf(wire.CodeBadRequest, "machine is empty")
	}
	switch args.Mode {
	case wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated:
	default:
		return nil, wire.Errorf(wire.CodeBadRequest, "mode %q is not read-only, interactive or elevated", args.Mode)
	}
	if err := args.Params.Validate(); err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	fps, err := rtc.Fingerprints(args.Params.SDP)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "the offer: %v", err)
	}
	if len(fps) > 4 {
		return nil, wire.Errorf(wire.CodeBadRequest, "the offer declares %d DTLS fingerprints; at most 4", len(fps))
	}
	return fps, nil
}
