package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// The fuzz targets cover every decoder that reads bytes from the network:
// the framing, each message and op argument a broker decodes, the replies an
// agent or technician decodes, and tokens. Each is seeded with real messages
// and checks that whatever decodes also re-encodes to something that
// decodes to the same value.

// seedTime is a time in a non-UTC zone with nanoseconds, the kind of value
// most likely to change in a round trip.
var seedTime = time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.FixedZone("", 3600))

func seedSnapshot() Snapshot {
	first := seedTime.Add(-48 * time.Hour)
	exp := seedTime.Add(8 * time.Hour)
	return Snapshot{
		CollectedAt:  seedTime,
		Hostname:     "desk-01.acme.lan",
		BootID:       "0d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
		OS:           OS{Family: "linux", ID: "ubuntu", Name: "Ubuntu 24.04 LTS", Version: "24.04", Kernel: "6.8.0-31-generic", Arch: "amd64"},
		AgentVersion: "0.3.1",
		Packages:     []Package{{Name: "openssl", Version: "3.0.13-0ubuntu3"}, {Name: "bash", Version: "5.2.21"}},
		PendingUpdates: []PendingUpdate{
			{ID: "openssl", Version: "3.0.13-0ubuntu3.1", Source: "apt", Security: true, FirstSeen: &first},
			{ID: "KB5034441", Source: "windows-update"},
		},
		Runtime:       RuntimeConfig{CheckInIntervalSec: 3600, HeartbeatSec: 5, ConsentPolicy: ConsentWindow},
		Approval:      Approval{Required: true, LastApprovedAt: &first, ExpiresAt: &exp, ApprovedBy: "alice"},
		Commands:      []CommandRecord{{At: seedTime, Command: "systemctl restart nginx", ExitCode: 0, Session: "s1"}},
		Sessions:      []SessionRecord{{ID: "s1", Technician: "tina", Mode: ModeInteractive, Path: "direct-quic", Start: first, End: seedTime}},
		Addresses:     []string{"192.0.2.10/24", "2001:db8::10/64"},
		CollectorErrs: []CollectorError{{Collector: "updates", Error: "apt: lock held"}},
	}
}

func mustJSON(f *testing.F, v any) []byte {
	f.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// roundTrip decodes body as a T. If that succeeds, the value must encode,
// the encoding must decode, re-encode to the same bytes, and decode again
// to a deeply equal value. The first decode is not compared with the
// second: time zones (Local vs UTC) and raw JSON whitespace legitimately
// change once, after which the value must be stable.
func roundTrip[T any](t *testing.T, body []byte) (*T, bool) {
	t.Helper()
	v1 := new(T)
	if err := Decode(body, v1); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
		}
		return nil, false
	}
	m1, err := json.Marshal(v1)
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v\ninput: %q", v1, err, body)
	}
	v2 := new(T)
	if err := Decode(m1, v2); err != nil {
		t.Fatalf("re-encoded %T is refused: %v\ninput:      %q\nre-encoded: %q", v1, err, body, m1)
	}
	m2, err := json.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m1, m2) {
		t.Fatalf("%T encodings differ:\nfirst:  %s\nsecond: %s", v1, m1, m2)
	}
	v3 := new(T)
	if err := Decode(m2, v3); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v2, v3) {
		t.Fatalf("%T changed in a round trip:\n%#v\n%#v", v1, v2, v3)
	}
	return v1, true
}

// FuzzReader feeds arbitrary bytes through the framing. A small oracle
// built on encoding/binary says what each read must return: a body of the
// prefixed length, io.EOF at a clean end, ErrTooLarge or ErrMalformed. No
// read may allocate much beyond the bytes it is given, whatever the prefix
// claims.
func FuzzReader(f *testing.F) {
	var stream bytes.Buffer
	for _, v := range []any{&Hello{MachineID: "m1", AgentVersion: "0.3.1"}, &Heartbeat{Seq: 1, Load1: 0.5},
		&HeartbeatAck{Seq: 1}, &CheckIn{MachineID: "m1", Seq: 1, Reason: ReasonReboot, Snapshot: seedSnapshot()}} {
		if err := Write(&stream, v); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(stream.Bytes(), uint16(4096))
	f.Add(stream.Bytes(), uint16(60))
	f.Add([]byte{}, uint16(10))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x04}, uint16(100))
	f.Add(bytes.Repeat([]byte{0xff}, 12), uint16(100))
	f.Add([]byte{0x03, 'a', 'b'}, uint16(100))
	f.Add([]byte{0x00, 0x00, 0x01, 'x'}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16) {
		max := int(max16 % 8192)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		r := NewReader(bytes.NewReader(data))
		off := 0
		for {
			body, err := r.ReadRaw(max)
			n, k := binary.Uvarint(data[off:])
			switch {
			case off == len(data):
				if err != io.EOF {
					t.Fatalf("at the end: got %v, want io.EOF", err)
				}
			case k <= 0:
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("bad prefix at %d: got %v, want ErrMalformed", off, err)
				}
			case n > uint64(max):
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("length %d over %d at %d: got %v, want ErrTooLarge", n, max, off, err)
				}
			case uint64(len(data)-off-k) < n:
				if !errors.Is(err, ErrMalformed) || errors.Is(err, io.EOF) {
					t.Fatalf("truncated body at %d: got %v, want ErrMalformed", off, err)
				}
			default:
				if err != nil {
					t.Fatalf("message at %d: %v", off, err)
				}
				want := data[off+k : off+k+int(n)]
				if !bytes.Equal(body, want) || cap(body) > max {
					t.Fatalf("message at %d: got %q (cap %d), want %q", off, body, cap(body), want)
				}
				off += k + int(n)
				continue
			}
			if body != nil {
				t.Fatalf("returned %d bytes with error %v", len(body), err)
			}
			break
		}
		runtime.ReadMemStats(&ms1)
		// The read buffer, the bodies (at most the input), error text, and
		// slack for whatever else the process allocated meanwhile.
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > uint64(len(data))+4096+256<<10 {
			t.Fatalf("reading %d bytes with limit %d allocated %d bytes", len(data), max, alloc)
		}
	})
}

func FuzzDecodeCheckIn(f *testing.F) {
	ci := CheckIn{MachineID: "12D3KooWQ6XW1Jtq5mPmS7XsUHBQv7mJc7nDL2yd3dE9Y4cjcR2e", Seq: 42, Reason: ReasonReboot, Snapshot: seedSnapshot()}
	f.Add(mustJSON(f, &ci))
	min := CheckIn{MachineID: "m", Seq: 1, Reason: ReasonEnroll,
		Snapshot: Snapshot{CollectedAt: seedTime.UTC(), Hostname: "h", OS: OS{Family: "windows"}, AgentVersion: "1"}}
	f.Add(mustJSON(f, &min))
	f.Add([]byte(`{"machine_id":"m","seq":1,"reason":"enroll","snapshot":{"collected_at":"2026-01-02T03:04:05+00:00",` +
		`"hostname":"h","os":{"family":"darwin"},"agent_version":"1","runtime":{"check_in_interval_s":0,"consent_policy":""},` +
		`"approval":{"required":false}}}`))
	f.Add([]byte(`{"machine_id":"m","seq":1,"reason":"enroll","snapshot":{"os":{"family":"beos"}}}`))
	f.Add([]byte(`{"machine_id":"m","seq":18446744073709551615,"reason":"demand","snapshot":null}`))
	f.Add([]byte(`{"Machine_ID":"m","SEQ":1e0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok := roundTrip[CheckIn](t, body)
		if ok && (v.MachineID == "" || v.Seq == 0 || v.Snapshot.Validate() != nil) {
			t.Fatalf("Decode accepted an invalid check-in: %+v", v)
		}
	})
}

func FuzzDecodeEnroll(f *testing.F) {
	f.Add(mustJSON(f, &Enroll{Secret: NewSecret(), BrokerID: testBrokerInfo.PeerID, Name: "desk-01",
		Hostname: "desk-01.acme.lan", AgentVersion: "0.3.1"}))
	f.Add([]byte(`{"secret":"s","name":"a"}`))
	f.Add([]byte(`{"secret":"s","name":"-a"}`))
	f.Add([]byte(`{"secret":"","name":"a"}`))
	f.Add([]byte(`{"secret":"s","name":"\u00e4"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok := roundTrip[Enroll](t, body)
		if ok && (v.Secret == "" || ValidName("", v.Name) != nil) {
			t.Fatalf("Decode accepted an invalid enrolment: %+v", v)
		}
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(mustJSON(f, &Heartbeat{Seq: 7, Load1: 0.37, UserPresent: true, Users: []string{"alice", "bob"}, CheckInSeq: 41}))
	f.Add(mustJSON(f, &Heartbeat{Seq: 1}))
	f.Add([]byte(`{"seq":1,"load1":-1}`))
	f.Add([]byte(`{"seq":1,"load1":1e6}`))
	f.Add([]byte(`{"seq":1,"load1":1e400}`))
	f.Add([]byte(`{"seq":1,"load1":-0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok := roundTrip[Heartbeat](t, body)
		if ok && (v.Load1 < 0 || v.Load1 > 1e6 || len(v.Users) > 1000) {
			t.Fatalf("Decode accepted an invalid heartbeat: %+v", v)
		}
	})
}

// FuzzDecodeRequest decodes a technician request and then its arguments as
// each op's argument type, the way the broker's decodeArgs does.
func FuzzDecodeRequest(f *testing.F) {
	on := true
	for _, r := range []struct {
		op   string
		args any
	}{
		{OpWhoAmI, nil},
		{OpMachines, MachinesArgs{Client: "acme", Readiness: StateReady, Online: &on, PendingUpdate: "openssl"}},
		{OpMachines, MachinesArgs{}},
		{OpTokensCreate, TokenArgs{Client: "acme", Uses: 10, TTLSec: 3600}},
		{OpTechniciansAdd, TechnicianArgs{Name: "tina", Clients: []string{"acme", "beta"}, Modes: []string{ModeReadOnly, ModeElevated}}},
		{OpClientsCreate, ClientArgs{Name: "acme"}},
		{OpShow, ShowArgs{Machine: "acme/desk-01"}},
	} {
		req := Request{Op: r.op}
		if r.args != nil {
			req.Args = mustJSON(f, r.args)
		}
		f.Add(mustJSON(f, &req))
	}
	f.Add([]byte(`{"op":"machines","args":null}`))
	f.Add([]byte(`{"op":"machines","args": { "online" : false } }`))
	f.Add([]byte(`{"op":"tokens.create","args":{"client":"a","uses":-1,"ttl_s":99999999999}}`))
	f.Add([]byte(`{"op":"x","args":"<&>"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := roundTrip[Request](t, body)
		if !ok {
			return
		}
		if req.Op == "" {
			t.Fatal("Decode accepted a request without op")
		}
		args := []byte(req.Args)
		if len(args) == 0 {
			args = []byte("{}")
		}
		roundTrip[MachinesArgs](t, args)
		if a, ok := roundTrip[TokenArgs](t, args); ok && (a.Validate() != nil || a.Uses < 0 || a.TTLSec < 0) {
			t.Fatalf("Decode accepted invalid token args: %+v", a)
		}
		if a, ok := roundTrip[TechnicianArgs](t, args); ok && (a.Validate() != nil || len(a.Clients) == 0 || len(a.Modes) == 0) {
			t.Fatalf("Decode accepted invalid technician args: %+v", a)
		}
		roundTrip[ClientArgs](t, args)
		roundTrip[ShowArgs](t, args)
	})
}

// FuzzDecodeOther covers the remaining messages: the other requests a
// broker decodes (hello, login) and every reply an agent or technician
// decodes from its broker.
func FuzzDecodeOther(f *testing.F) {
	tok := Token{Kind: KindLogin, Secret: NewSecret(), Broker: testBrokerInfo}
	load, user := 0.4, true
	tech := Technician{Name: "tina", Clients: []string{"acme"}, Modes: []string{ModeReadOnly}, Keys: []string{"k1"}, CreatedAt: seedTime}
	card := Card{ID: "m1", Name: "desk-01", Client: "acme",
		Readiness: Readiness{State: StateDegraded, Reasons: []string{"pending security updates"}, EnrolledAt: seedTime,
			LastCheckIn: &seedTime, CheckInSeq: 3, OS: &OS{Family: "linux", Name: "Debian"}},
		Reachability: Reachability{Online: true, Since: &seedTime, LastSeen: &seedTime, Broker: "eu-1", Load1: &load, UserPresent: &user}}
	result := mustJSON(f, []Card{card})
	for _, v := range []any{
		&Hello{MachineID: "m1", AgentVersion: "0.3.1"},
		&Login{Token: tok.String()},
		&EnrollReply{MachineID: "m1", Name: "desk-01", Client: "acme", Broker: testBrokerInfo},
		&EnrollReply{Error: &Error{Code: CodeTokenInvalid, Message: "unknown token"}},
		&CheckInAck{Seq: 3, Duplicate: true, StoredAt: seedTime},
		&HelloReply{HeartbeatMS: 5000, Brokers: []BrokerInfo{testBrokerInfo}},
		&HeartbeatAck{Seq: 9, CheckIn: true},
		&LoginReply{Technician: tech, Broker: testBrokerInfo},
		&Reply{Result: result},
		&Reply{Error: &Error{Code: CodeForbidden, Message: "no"}},
	} {
		f.Add(mustJSON(f, v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip[Hello](t, body)
		if v, ok := roundTrip[Login](t, body); ok && v.Token == "" {
			t.Fatal("Decode accepted a login without token")
		}
		roundTrip[EnrollReply](t, body)
		roundTrip[CheckInAck](t, body)
		roundTrip[HelloReply](t, body)
		roundTrip[HeartbeatAck](t, body)
		roundTrip[LoginReply](t, body)
		if r, ok := roundTrip[Reply](t, body); ok && len(r.Result) > 0 {
			roundTrip[[]Card](t, r.Result)
			roundTrip[Card](t, r.Result)
			roundTrip[TokenResult](t, r.Result)
			roundTrip[TechnicianResult](t, r.Result)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	sec := NewSecret()
	f.Add(Token{Kind: KindEnroll, Secret: sec, Broker: testBrokerInfo}.String())
	f.Add(Token{Kind: KindLogin, Secret: sec, Broker: testBrokerInfo}.String() + "\n")
	f.Add(Token{Kind: KindLogin, Secret: sec, Broker: BrokerInfo{PeerID: "p", Addrs: []string{""}}}.String())
	f.Add("rme1_")
	f.Add("rme1_e30")
	f.Add("rml1_!!")
	f.Add("_")
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []string{KindEnroll, KindLogin} {
			tok, err := ParseToken(kind, s)
			if err != nil {
				if !errors.Is(err, ErrBadToken) {
					t.Fatalf("error %v does not wrap ErrBadToken", err)
				}
				continue
			}
			if tok.Kind != kind || len(tok.Secret) != 64 || tok.Broker.PeerID == "" || len(tok.Broker.Addrs) == 0 {
				t.Fatalf("ParseToken accepted %+v", tok)
			}
			other := KindLogin
			if kind == KindLogin {
				other = KindEnroll
			}
			if _, err := ParseToken(other, s); err == nil {
				t.Fatalf("%q parses as both %s and %s", s, kind, other)
			}
			s2 := tok.String()
			if len(s2) > MaxControl {
				// Re-encoding may escape characters (<, >, &) and grow
				// past the length limit; not a concern for real tokens.
				continue
			}
			tok2, err := ParseToken(kind, s2)
			if err != nil {
				t.Fatalf("re-encoded token refused: %v\ninput: %q\nre-encoded: %q", err, s, s2)
			}
			if !reflect.DeepEqual(tok, tok2) {
				t.Fatalf("token changed in a round trip:\n%+v\n%+v", tok, tok2)
			}
			if tok2.String() != s2 {
				t.Fatalf("token encoding is not stable: %q, then %q", s2, tok2.String())
			}
		}
	})
}

// FuzzDecodeSignalling feeds session signalling (an offer as an agent
// reads it, a session request as a broker reads it) through Decode: what
// it accepts must be within the limits the agent and broker rely on.
func FuzzDecodeSignalling(f *testing.F) {
	o := Offer{Grant: SignedGrant{Body: []byte(`{"v":1}`), Sig: []byte("sig")}, Transport: TransportAuto,
		Params:   PeerParams{Candidates: []Candidate{{Kind: CandSrflx, Addr: "203.0.113.7:41641"}}, Ufrag: "u", Pwd: "p"},
		Observed: []Candidate{{Kind: CandSrflx, Addr: "[2001:db8::1]:9"}}, PunchDelayMs: 20}
	f.Add(mustJSON(f, &o))
	a := SessionArgs{Machine: "acme/pc", Mode: ModeReadOnly, Transport: TransportWebRTC, Params: PeerParams{SDP: "v=0"}, Sig: []byte("s")}
	f.Add(mustJSON(f, &a))
	f.Add([]byte(`{"grant":{"body":"e30=","sig":"eA=="},"params":{"candidates":[{"kind":"host","addr":"nowhere"}]}}`))
	f.Add([]byte(`{"machine":"m","mode":"elevated","transport":"relay","params":{"ufrag":"u"},"sig":"eA=="}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if v, ok := roundTrip[Offer](t, body); ok {
			if len(v.Params.Candidates) > MaxCandidates || len(v.Observed) > 4 || len(v.Params.SDP) > MaxSDP ||
				len(v.Grant.Body) == 0 || v.PunchDelayMs < 0 || v.PunchDelayMs > 10_000 {
				t.Fatalf("Decode accepted an offer out of bounds: %+v", v)
			}
			for _, c := range append(v.Params.Candidates, v.Observed...) {
				if c.Validate() != nil {
					t.Fatalf("Decode accepted a bad candidate %+v", c)
				}
			}
		}
		if v, ok := roundTrip[SessionArgs](t, body); ok {
			if v.Machine == "" || len(v.Sig) == 0 || (v.Transport == TransportWebRTC && v.Params.SDP == "") {
				t.Fatalf("Decode accepted an invalid session request: %+v", v)
			}
		}
	})
}
