package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The session messages moved between files when session.go was split by
// concept. These golden encodings were taken from the code before the move:
// agents, brokers and technicians of the previous release must keep reading
// each other's bytes, so any change here is a protocol change, not a
// refactor.

// sessionMessages holds one fully populated value of every session-related
// message, keyed by name. Every field is set so a renamed JSON key, a
// dropped omitempty or a changed type shows up as a changed byte.
func sessionMessages() map[string]any {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)
	params := PeerParams{
		Candidates: []Candidate{{Kind: CandHost, Addr: "192.0.2.10:41641"}, {Kind: CandSrflx, Addr: "[2001:db8::1]:9"}},
		Ufrag:      "ufrag", Pwd: "pwd", SDP: "v=0",
	}
	grant := SignedGrant{Body: []byte(`{"v":1}`), Sig: []byte{1, 2, 3}}
	return map[string]any{
		"ICEInfo": ICEInfo{STUNPort: 3478, TURNUser: "u", TURNPassword: "p"},
		"SessionArgs": SessionArgs{Machine: "acme/pc", Mode: ModeInteractive, Transport: TransportAuto,
			Params: params, Sig: []byte("sig"), StunToken: "tok"},
		"Grant": Grant{Version: 1, Session: "0123456789abcdef0123456789abcdef", Technician: "tech", Machine: "machine",
			Mode: ModeElevated, Issuer: "issuer", IssuedAt: at, Expires: at.Add(time.Minute), Nonce: "nonce",
			TechnicianName: "alice", Fingerprints: []string{"sha-256 AB:CD"}},
		"Offer": Offer{Grant: grant, Transport: TransportWebRTC, Params: params, ParamsSig: []byte("ps"),
			Observed: []Candidate{{Kind: CandSrflx, Addr: "203.0.113.7:1"}}, PunchDelayMs: 20, Relay: true,
			STUNPort: 3478, TURNUser: "u", TURNPassword: "p"},
		"Answer": Answer{Error: &Error{Code: CodeForbidden, Message: "no"}, Params: params, ParamsSig: []byte("as")},
		"SessionResult": SessionResult{Grant: grant, Session: "s", Machine: "m", Name: "acme/pc", Answer: params,
			AnswerSig: []byte("a"), Relay: true, RelayName: "b1", STUNPort: 3478, TURNUser: "u", TURNPassword: "p"},
		"RelayHello": RelayHello{Session: "0123456789abcdef0123456789abcdef"},
		"RelayReady": RelayReady{Error: &Error{Code: CodeConflict, Message: "gone"}},
		"SessionStatus": SessionStatus{Sessions: []SessionInfo{{Session: "s", Technician: "alice", Mode: ModeReadOnly,
			Path: PathRelayed, Remote: "r", Started: at, InputPaused: true, State: "active", Shared: true}}},
		"ConsentPolicyArgs": ConsentPolicyArgs{Machine: "m", Policy: ConsentWindow, WindowSec: 60, By: "alice"},
		"ConsentRequest": ConsentRequest{ID: "c1", Session: "s", Technician: "alice", Mode: ModeInteractive,
			Policy: ConsentSession, Asked: at},
		"AuditEntry": AuditEntry{Seq: 7, At: at, Event: AuditGranted, Session: "s", Technician: "alice",
			Machine: "acme/pc", Mode: ModeReadOnly, Transport: TransportQUIC, Path: PathDirectQUIC, Detail: "d"},
		"AuditArgs":      AuditArgs{Machine: "m", Session: "s", Limit: 5},
		"Transcript":     Transcript{Session: "s", Name: "s-1.cast", Machine: "m", At: at, Cast: []byte("\x00cast")},
		"TranscriptArgs": TranscriptArgs{Session: "012345"},
		"names": []string{string(ProtoSession), string(ProtoRelay), string(ProtoSessionStatus), string(ProtoPolicy),
			string(ProtoTranscript), OpSessionOpen, OpSessionICE, OpConsentSet, OpAudit, OpTranscript,
			TransportAuto, TransportQUIC, TransportWebRTC, TransportRelay,
			PathDirectQUIC, PathDirectWebRTC, PathRelayed, PathRelayedTURN, CandHost, CandSrflx,
			AuditRequested, AuditGranted, AuditRefused, AuditStarted, AuditEnded, AuditPolicy, AuditConsoleLogin},
		"limits": []int{MaxCandidates, MaxSDP, MaxTranscript},
	}
}

// sessionGolden is the framed encoding (length prefix and JSON) of each
// value sessionMessages returns.
var sessionGolden = map[string]string{
	"Answer":            "\xd7\x01{\"error\":{\"code\":\"forbidden\",\"message\":\"no\"},\"params\":{\"candidates\":[{\"kind\":\"host\",\"addr\":\"192.0.2.10:41641\"},{\"kind\":\"srflx\",\"addr\":\"[2001:db8::1]:9\"}],\"ufrag\":\"ufrag\",\"pwd\":\"pwd\",\"sdp\":\"v=0\"},\"params_sig\":\"YXM=\"}",
	"AuditArgs":         "'{\"machine\":\"m\",\"session\":\"s\",\"limit\":5}",
	"AuditEntry":        "\xc5\x01{\"seq\":7,\"at\":\"2026-03-04T05:06:07.000008Z\",\"event\":\"session.granted\",\"session\":\"s\",\"technician\":\"alice\",\"machine\":\"acme/pc\",\"mode\":\"read-only\",\"transport\":\"quic\",\"path\":\"direct-quic\",\"detail\":\"d\"}",
	"ConsentPolicyArgs": "<{\"machine\":\"m\",\"policy\":\"window\",\"window_s\":60,\"by\":\"alice\"}",
	"ConsentRequest":    "|{\"id\":\"c1\",\"session\":\"s\",\"technician\":\"alice\",\"mode\":\"interactive\",\"policy\":\"session\",\"asked\":\"2026-03-04T05:06:07.000008Z\"}",
	"Grant":             "\x9d\x02{\"v\":1,\"session\":\"0123456789abcdef0123456789abcdef\",\"technician\":\"tech\",\"machine\":\"machine\",\"mode\":\"elevated\",\"issuer\":\"issuer\",\"issued_at\":\"2026-03-04T05:06:07.000008Z\",\"expires\":\"2026-03-04T05:07:07.000008Z\",\"nonce\":\"nonce\",\"technician_name\":\"alice\",\"fingerprints\":[\"sha-256 AB:CD\"]}",
	"ICEInfo":           "6{\"stun_port\":3478,\"turn_user\":\"u\",\"turn_password\":\"p\"}",
	"Offer":             "\xf8\x02{\"grant\":{\"body\":\"eyJ2IjoxfQ==\",\"sig\":\"AQID\"},\"transport\":\"webrtc\",\"params\":{\"candidates\":[{\"kind\":\"host\",\"addr\":\"192.0.2.10:41641\"},{\"kind\":\"srflx\",\"addr\":\"[2001:db8::1]:9\"}],\"ufrag\":\"ufrag\",\"pwd\":\"pwd\",\"sdp\":\"v=0\"},\"params_sig\":\"cHM=\",\"observed\":[{\"kind\":\"srflx\",\"addr\":\"203.0.113.7:1\"}],\"punch_delay_ms\":20,\"relay\":true,\"stun_port\":3478,\"turn_user\":\"u\",\"turn_password\":\"p\"}",
	"RelayHello":        ".{\"session\":\"0123456789abcdef0123456789abcdef\"}",
	"RelayReady":        ".{\"error\":{\"code\":\"conflict\",\"message\":\"gone\"}}",
	"SessionArgs":       "\xf3\x01{\"machine\":\"acme/pc\",\"mode\":\"interactive\",\"transport\":\"auto\",\"params\":{\"candidates\":[{\"kind\":\"host\",\"addr\":\"192.0.2.10:41641\"},{\"kind\":\"srflx\",\"addr\":\"[2001:db8::1]:9\"}],\"ufrag\":\"ufrag\",\"pwd\":\"pwd\",\"sdp\":\"v=0\"},\"sig\":\"c2ln\",\"stun_token\":\"tok\"}",
	"SessionResult":     "\xd9\x02{\"grant\":{\"body\":\"eyJ2IjoxfQ==\",\"sig\":\"AQID\"},\"session\":\"s\",\"machine\":\"m\",\"name\":\"acme/pc\",\"answer\":{\"candidates\":[{\"kind\":\"host\",\"addr\":\"192.0.2.10:41641\"},{\"kind\":\"srflx\",\"addr\":\"[2001:db8::1]:9\"}],\"ufrag\":\"ufrag\",\"pwd\":\"pwd\",\"sdp\":\"v=0\"},\"answer_sig\":\"YQ==\",\"relay\":true,\"relay_name\":\"b1\",\"stun_port\":3478,\"turn_user\":\"u\",\"turn_password\":\"p\"}",
	"SessionStatus":     "\xbf\x01{\"sessions\":[{\"session\":\"s\",\"technician\":\"alice\",\"mode\":\"read-only\",\"path\":\"relayed\",\"remote\":\"r\",\"started\":\"2026-03-04T05:06:07.000008Z\",\"input_paused\":true,\"state\":\"active\",\"shared\":true}]}",
	"Transcript":        "d{\"session\":\"s\",\"name\":\"s-1.cast\",\"machine\":\"m\",\"at\":\"2026-03-04T05:06:07.000008Z\",\"cast\":\"AGNhc3Q=\"}",
	"TranscriptArgs":    "\x14{\"session\":\"012345\"}",
	"limits":            "\x13[32,32768,16777216]",
	"names":             "\xaf\x03[\"/readymesh/session/1.0.0\",\"/readymesh/relay/1.0.0\",\"/readymesh/session-status/1.0.0\",\"/readymesh/policy/1.0.0\",\"/readymesh/transcript/1.0.0\",\"session.open\",\"session.ice\",\"consent.set\",\"audit\",\"transcript\",\"auto\",\"quic\",\"webrtc\",\"relay\",\"direct-quic\",\"direct-webrtc\",\"relayed\",\"relayed-turn\",\"host\",\"srflx\",\"session.requested\",\"session.granted\",\"session.refused\",\"session.started\",\"session.ended\",\"consent.policy\",\"console.login\"]",
}

func TestSessionMessagesEncodeAsBefore(t *testing.T) {
	msgs := sessionMessages()
	if len(msgs) != len(sessionGolden) {
		t.Fatalf("%d messages, %d golden encodings", len(msgs), len(sessionGolden))
	}
	for name, v := range msgs {
		got, err := Encode(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := sessionGolden[name]; string(got) != want {
			t.Errorf("%s encodes as\n%q\nwant\n%q", name, got, want)
		}
	}
}

// TestSessionMessagesDecodeAsBefore decodes each golden body into a fresh
// value of its type and checks nothing is lost: the JSON keys a reader
// accepts are the ones a writer produces.
func TestSessionMessagesDecodeAsBefore(t *testing.T) {
	for name, v := range sessionMessages() {
		golden := []byte(sessionGolden[name])
		body, err := NewReader(bytes.NewReader(golden)).ReadRaw(MaxControl)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fresh := reflect.New(reflect.TypeOf(v))
		if err := json.Unmarshal(body, fresh.Interface()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := fresh.Elem().Interface(); !reflect.DeepEqual(got, v) {
			t.Errorf("%s decodes as %+v, want %+v", name, got, v)
		}
	}
}
