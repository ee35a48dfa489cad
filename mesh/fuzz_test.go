package mesh

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pion/stun/v4"

	"github.com/readymesh/readymesh/peer/wire"
)

// The fuzz targets here cover what the agent's side of a session reads
// from others: the signed grant a broker carries (VerifyGrant), the claim
// a technician sends on its connection's first stream, the relay frames a
// broker splices in, and the STUN packets anyone on the network may send
// to the session socket. The offer around the grant is fuzzed in
// peer/wire (FuzzDecodeSignalling), the SDP in mesh/rtc (FuzzFingerprints).

// FuzzVerifyGrant checks signed grants as the agent does for an offer or a
// queued job. Whatever the bytes, the answer is one of the grant errors or
// a grant that really is the trusted broker's, for this machine, in force.
func FuzzVerifyGrant(f *testing.F) {
	broker, machine, tech, stranger := newKey(f), newKey(f), newKey(f), newKey(f)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	issue := func(signer, machineOf string, at time.Time) wire.SignedGrant {
		key := broker.Priv
		if signer == "stranger" {
			key = stranger.Priv
		}
		m := machine.ID.String()
		if machineOf == "other" {
			m = tech.ID.String()
		}
		sg, _, err := IssueGrant(key, wire.Grant{Technician: tech.ID.String(), Machine: m, Mode: wire.ModeInteractive,
			TechnicianName: "tina"}, at, time.Minute)
		if err != nil {
			f.Fatal(err)
		}
		return sg
	}
	good := issue("broker", "this", now.Add(-10*time.Second))
	for _, sg := range []wire.SignedGrant{
		good,
		{Body: good.Body, Sig: append(append([]byte(nil), good.Sig[:63]...), good.Sig[63]^1)},
		{Body: good.Body},
		issue("stranger", "this", now),
		issue("broker", "other", now),
		issue("broker", "this", now.Add(-time.Hour)),
		{Body: []byte(`{"v":1,"issuer":"` + broker.ID.String() + `"}`), Sig: good.Sig},
	} {
		f.Add(sg.Body, sg.Sig)
	}
	trusted := func(p peer.ID) bool { return p == broker.ID }
	f.Fuzz(func(t *testing.T, body, sig []byte) {
		g, err := VerifyGrant(wire.SignedGrant{Body: body, Sig: sig}, machine.ID, trusted, now)
		if err != nil {
			if !errors.Is(err, ErrGrantForged) && !errors.Is(err, ErrGrantIssuer) &&
				!errors.Is(err, ErrGrantMachine) && !errors.Is(err, ErrGrantExpired) {
				t.Fatalf("error %v is none of the grant errors", err)
			}
			return
		}
		if !bytes.Equal(body, good.Body) {
			t.Fatalf("accepted a grant the broker never signed: %q", body)
		}
		if g.Validate() != nil || g.Machine != machine.ID.String() || g.Issuer != broker.ID.String() || !now.Before(g.Expires) {
			t.Fatalf("accepted grant %+v", g)
		}
	})
}

// FuzzClaim reads a technician's claim as the agent does (the hello
// channel's name, then the claim) and the agent's verdict as the
// technician does. A claim is accepted only when it is exactly the hello
// channel and a frame naming the connection's session.
func FuzzClaim(f *testing.F) {
	const id = "0123456789abcdef0123456789abcdef"
	claim := func(name string, v any) []byte {
		var b bytes.Buffer
		if err := writeChanName(&b, name); err != nil {
			f.Fatal(err)
		}
		if err := writeJSONFrame(&b, v); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	f.Add(claim(ChanHello, hello{Session: id}))
	f.Add(claim(ChanHello, hello{Session: strings.ToUpper(id)}))
	f.Add(claim(ChanEcho, hello{Session: id}))
	for _, r := range []helloReply{{Mode: wire.ModeReadOnly}, {Error: &wire.Error{Code: wire.CodeConflict, Message: "grant was already used"}}} {
		var b bytes.Buffer
		if err := writeJSONFrame(&b, r); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte("\x05hello\xff\xff\x03"))
	f.Add([]byte("\xffhello"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		refusal := readHello(bytes.NewReader(data), id)
		runtime.ReadMemStats(&ms1)
		// The name (255 bytes at most), a reader's buffer, a claim of
		// at most wire.MaxControl, and slack.
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 2*uint64(len(data))+wire.MaxControl+256<<10 {
			t.Fatalf("reading a %d-byte claim allocated %d bytes", len(data), alloc)
		}
		if refusal == nil {
			checkClaim(t, data, id)
		} else if refusal.Code != wire.CodeBadRequest {
			t.Fatalf("refused a claim with code %q", refusal.Code)
		}
		var r helloReply
		if err := readJSONFrame(bytes.NewReader(data), &r); err == nil {
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("decoded reply does not encode: %v", err)
			}
			var again helloReply
			if err := json.Unmarshal(raw, &again); err != nil || again.Mode != r.Mode || (again.Error == nil) != (r.Error == nil) {
				t.Fatalf("reply changed in a round trip: %+v, then %+v (%v)", r, again, err)
			}
		}
	})
}

// checkClaim is the oracle for an accepted claim: the bytes start with
// the hello channel's name and a whole length-prefixed frame whose JSON
// names session id.
func checkClaim(t *testing.T, data []byte, id string) {
	t.Helper()
	rest, ok := bytes.CutPrefix(data, []byte("\x05"+ChanHello))
	if !ok {
		t.Fatalf("accepted a claim on another channel: %q", data)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > wire.MaxControl || uint64(len(rest)-k) < n {
		t.Fatalf("accepted a claim without a whole frame: %q", data)
	}
	var h hello
	if err := json.Unmarshal(rest[k:k+int(n)], &h); err != nil || h.Session != id {
		t.Fatalf("accepted a claim for session %q (%v)", h.Session, err)
	}
}

// FuzzRelayFrames reads relay frames as the agent's pump does from the
// broker's relay stream: a frame frameBuffered calls whole is whole, each
// frame is its length prefix's packet, and what reads writes back to the
// same bytes.
func FuzzRelayFrames(f *testing.F) {
	var seed bytes.Buffer
	WriteFrame(&seed, []byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8}) // a QUIC long header's start
	WriteFrame(&seed, bytes.Repeat([]byte{0x40}, 1200))
	WriteFrame(&seed, nil)
	f.Add(seed.Bytes(), uint32(MaxRelayFrame))
	f.Add([]byte{0xff, 0xff, 1, 2, 3}, uint32(MaxRelayFrame))
	f.Add([]byte{0x00, 0x10, 1, 2, 3}, uint32(8))
	f.Add([]byte{0x00}, uint32(MaxRelayFrame))
	f.Fuzz(func(t *testing.T, data []byte, size uint32) {
		buf := make([]byte, 2+size%MaxRelayFrame)
		br := bufio.NewReaderSize(bytes.NewReader(data), 256<<10)
		for off := 0; off < len(data); {
			whole := frameBuffered(br)
			pkt, err := ReadFrame(br, buf)
			left := data[off:]
			if len(left) < 2 {
				if err == nil || whole {
					t.Fatalf("a cut prefix at %d read as a frame (buffered: %v)", off, whole)
				}
				return
			}
			n := int(binary.BigEndian.Uint16(left))
			switch {
			case n > len(buf):
				if err == nil {
					t.Fatalf("a %d-byte frame read into a %d-byte buffer", n, len(buf))
				}
				return
			case n > len(left)-2:
				if err == nil || whole {
					t.Fatalf("a cut frame at %d read (buffered: %v)", off, whole)
				}
				return
			case err != nil || !bytes.Equal(pkt, left[2:2+n]):
				t.Fatalf("frame at %d: %d bytes, %v, buffered %v; want %d bytes", off, len(pkt), err, whole, n)
			}
			var again bytes.Buffer
			if err := WriteFrame(&again, pkt); err != nil || !bytes.Equal(again.Bytes(), left[:2+n]) {
				t.Fatalf("frame at %d writes back as %x, read from %x", off, again.Bytes(), left[:2+n])
			}
			off += 2 + n
		}
	})
}

// FuzzSocketPacket feeds the session socket what anyone on the network
// may send it: a probe is answered, and its source learned, only when it
// names the session's ufrag and its integrity holds with the session's
// password; a binding answer reaches only the request in flight with its
// transaction ID.
func FuzzSocketPacket(f *testing.F) {
	const ufrag, pwd, remoteUfrag = "aaaabbbb", "0123456789abcdef0123456789abcdef", "ccccdddd"
	s, sink := fuzzSocket(f)
	p := s.newProber(ufrag, pwd, remoteUfrag, "remote-password", nil)
	var inFlight [stun.TransactionIDSize]byte
	copy(inFlight[:], "readymesh-tx")
	replies, done := s.transaction(inFlight)
	f.Cleanup(done)
	build := func(setters ...stun.Setter) []byte {
		m, err := stun.Build(setters...)
		if err != nil {
			f.Fatal(err)
		}
		return m.Raw
	}
	tx := stun.NewTransactionIDSetter(inFlight)
	f.Add(build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":"+remoteUfrag),
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint))
	f.Add(build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":"+remoteUfrag),
		stun.NewShortTermIntegrity("wrong"), stun.Fingerprint))
	f.Add(build(stun.TransactionID, stun.BindingRequest, stun.NewUsername("nobody:"+remoteUfrag),
		stun.NewShortTermIntegrity(pwd)))
	f.Add(build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint))
	f.Add(build(tx, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(203, 0, 113, 7), Port: 41641}, stun.Fingerprint))
	f.Add(build(stun.TransactionID, stun.BindingSuccess, stun.Fingerprint))
	f.Add([]byte{0xc0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		p.mu.Lock()
		p.targets = nil
		p.mu.Unlock()
		s.handle(pkt, sink)
		p.mu.Lock()
		learned := len(p.targets) > 0
		p.mu.Unlock()
		m := &stun.Message{Raw: append([]byte(nil), pkt...)}
		decoded := stun.IsMessage(pkt) && m.Decode() == nil
		var u stun.Username
		probe := decoded && m.Type == stun.BindingRequest && u.GetFrom(m) == nil &&
			strings.HasPrefix(u.String(), ufrag+":") && stun.NewShortTermIntegrity(pwd).Check(m) == nil
		if learned != probe {
			t.Fatalf("probe %x: learned its source %v, authentic probe %v", pkt, learned, probe)
		}
		select {
		case r := <-replies:
			if !decoded || m.Type != stun.BindingSuccess || m.TransactionID != inFlight {
				t.Fatalf("packet %x reached the request in flight", pkt)
			}
			if r.from != sink {
				t.Fatalf("answer from %v, sent from %v", r.from, sink)
			}
		default:
			if decoded && m.Type == stun.BindingSuccess && m.TransactionID == inFlight {
				t.Fatalf("answer %x did not reach the request in flight", pkt)
			}
		}
	})
}

// fuzzSocket is a session socket on loopback and the loopback address its
// answers go to (a socket the test owns and never reads).
func fuzzSocket(f *testing.F) (*socket, netip.AddrPort) {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	s := newSocket(udp, udp, slog.New(slog.DiscardHandler))
	f.Cleanup(func() {
		s.tr.Close()
		udp.Close()
		sink.Close()
	})
	return s, sink.LocalAddr().(*net.UDPAddr).AddrPort()
}
