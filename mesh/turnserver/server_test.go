package turnserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func TestBindingReturnsClientAddress(t *testing.T) {
	checkLeaks(t)
	s := newLoopbackServer(t, Config{})

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if _, err := conn.WriteTo(req.Raw, s.Addr()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no Binding response: %v", err)
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if res.Type != stun.BindingSuccess || res.TransactionID != req.TransactionID {
		t.Fatalf("response %v, want Binding success for our transaction", res)
	}
	var mapped stun.XORMappedAddress
	if err := mapped.GetFrom(res); err != nil {
		t.Fatalf("no XOR-MAPPED-ADDRESS: %v", err)
	}
	local := conn.LocalAddr().(*net.UDPAddr)
	if !mapped.IP.Equal(local.IP) || mapped.Port != local.Port {
		t.Fatalf("mapped address %v, want %v", mapped, local)
	}
}

func TestRelayBetweenTwoClients(t *testing.T) {
	checkLeaks(t)
	secret := testSecret(t)
	s := newLoopbackServer(t, Config{Secret: secret})
	expiry := time.Now().Add(time.Hour)

	ua, pa := Credentials(secret, "tech-alice", expiry)
	ub, pb := Credentials(secret, "agent-42", expiry)
	a := newClient(t, nil, s.Addr(), ua, pa)
	b := newClient(t, nil, s.Addr(), ub, pb)
	relayA, err := a.allocate(t)
	if err != nil {
		t.Fatalf("allocate A: %v", err)
	}
	relayB, err := b.allocate(t)
	if err != nil {
		t.Fatalf("allocate B: %v", err)
	}
	if got := s.Stats().Allocations; got != 2 {
		t.Fatalf("Stats.Allocations = %d, want 2", got)
	}
	// Each side must permit the other's relay before packets from it are
	// forwarded.
	if err := a.CreatePermission(relayB.LocalAddr()); err != nil {
		t.Fatalf("permission A→B: %v", err)
	}
	if err := b.CreatePermission(relayA.LocalAddr()); err != nil {
		t.Fatalf("permission B→A: %v", err)
	}

	const rounds = 20
	buf := make([]byte, 1500)
	for i := range rounds {
		msg := fmt.Appendf(nil, "ping %d", i)
		if _, err := relayA.WriteTo(msg, relayB.LocalAddr()); err != nil {
			t.Fatalf("A send: %v", err)
		}
		_ = relayB.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := relayB.ReadFrom(buf)
		if err != nil {
			t.Fatalf("B receive %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], msg) || from.String() != relayA.LocalAddr().String() {
			t.Fatalf("B got %q from %v, want %q from %v", buf[:n], from, msg, relayA.LocalAddr())
		}
		if _, err := relayB.WriteTo(buf[:n], from); err != nil {
			t.Fatalf("B echo: %v", err)
		}
		_ = relayA.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err = relayA.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("A got %q, %v; want %q", buf[:n], err, msg)
		}
	}
	st := s.Stats()
	// Every message crossed two relay sockets each way.
	if min := uint64(4 * rounds * len("ping 0")); st.RelayedBytes < min {
		t.Errorf("Stats.RelayedBytes = %d, want at least %d", st.RelayedBytes, min)
	}
	if st.AllocationsCreated != 2 || st.AuthFailures != 0 {
		t.Errorf("Stats = %+v, want 2 created, no auth failures", st)
	}

	// Releasing an allocation (a Refresh with lifetime 0) frees it at once.
	_ = relayA.Close()
	waitFor(t, 5*time.Second, "allocation A to be freed", func() bool { return s.Stats().Allocations == 1 })
}

func TestRefusedCredentials(t *testing.T) {
	checkLeaks(t)
	secret := testSecret(t)
	s := newLoopbackServer(t, Config{Secret: secret})
	valid, validPass := Credentials(secret, "alice", time.Now().Add(time.Hour))
	expired, expiredPass := Credentials(secret, "alice", time.Now().Add(-time.Second))
	foreign, foreignPass := Credentials(testSecret(t), "mallory", time.Now().Add(time.Hour))

	for _, tc := range []struct {
		name, user, pass string
	}{
		{"expired", expired, expiredPass},
		{"wrong password", valid, validPass + "x"},
		{"other secret", foreign, foreignPass},
		{"unknown static user", "alice", "hunter2"},
		{"no user part", "4102444800:", "x"},
		{"expiry not a number", "soon:alice", "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats().AuthFailures
			c := newClient(t, nil, s.Addr(), tc.user, tc.pass)
			_, err := c.allocate(t)
			if err == nil {
				t.Fatal("allocation succeeded, want refusal")
			}
			if code := turnCode(err); code != stun.CodeUnauthorized {
				t.Fatalf("error %v (code %d), want 401 Unauthorized", err, code)
			}
			if got := s.Stats().AuthFailures; got <= before {
				t.Errorf("Stats.AuthFailures = %d, want more than %d", got, before)
			}
		})
	}
	if st := s.Stats(); st.Allocations != 0 || st.AllocationsCreated != 0 {
		t.Errorf("Stats = %+v, want no allocations", st)
	}

	// The same server still serves valid credentials.
	c := newClient(t, nil, s.Addr(), valid, validPass)
	if _, err := c.allocate(t); err != nil {
		t.Fatalf("valid credentials refused: %v", err)
	}
}

func TestMaxAllocations(t *testing.T) {
	checkLeaks(t)
	secret := testSecret(t)
	s := newLoopbackServer(t, Config{Secret: secret, MaxAllocations: 2})
	user, pass := Credentials(secret, "tech", time.Now().Add(time.Hour))

	var relays []net.PacketConn
	for i := range 2 {
		relay, err := newClient(t, nil, s.Addr(), user, pass).allocate(t)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		relays = append(relays, relay)
	}
	_, err := newClient(t, nil, s.Addr(), user, pass).allocate(t)
	if code := turnCode(err); code != stun.CodeAllocQuotaReached {
		t.Fatalf("third allocation: %v (code %d), want 486 Allocation Quota Reached", err, code)
	}
	if st := s.Stats(); st.Allocations != 2 || st.AllocationsRefused != 1 {
		t.Fatalf("Stats = %+v, want 2 open and 1 refused", st)
	}

	// A freed slot is available again.
	_ = relays[0].Close()
	waitFor(t, 5*time.Second, "a slot to free", func() bool { return s.Stats().Allocations == 1 })
	if _, err := newClient(t, nil, s.Addr(), user, pass).allocate(t); err != nil {
		t.Fatalf("allocation after a release: %v", err)
	}
}

func TestPermitPeerRefusesPeers(t *testing.T) {
	checkLeaks(t)
	secret := testSecret(t)
	s := newLoopbackServer(t, Config{Secret: secret, PermitPeer: func(ip net.IP) bool { return !ip.IsLoopback() }})
	user, pass := Credentials(secret, "tech", time.Now().Add(time.Hour))
	c := newClient(t, nil, s.Addr(), user, pass)
	if _, err := c.allocate(t); err != nil {
		t.Fatalf("allocate: %v", err)
	}
	err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if code := turnCode(err); code != stun.CodeForbidden {
		t.Fatalf("CreatePermission to loopback: %v (code %d), want 403 Forbidden", err, code)
	}
}

func TestDefaultPermitPeer(t *testing.T) {
	for _, tc := range []struct {
		ip            string
		loopbackRelay bool
		want          bool
	}{
		{"203.0.113.7", false, true},
		{"10.1.2.3", false, true}, // a LAN peer relayed for a LAN client is legitimate
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"::1", false, false},
		{"0.0.0.0", true, false},
		{"224.0.0.251", false, false},
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
	} {
		if got := defaultPermitPeer(tc.loopbackRelay)(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("peer %s (loopback relay %v): permitted = %v, want %v", tc.ip, tc.loopbackRelay, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	secret := make([]byte, 32)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no secret", Config{ListenAddr: "127.0.0.1:0"}},
		{"short secret", Config{ListenAddr: "127.0.0.1:0", Secret: []byte("short")}},
		{"unspecified listen, no RelayIP", Config{ListenAddr: "0.0.0.0:0", Secret: secret}},
		{"unspecified RelayIP", Config{ListenAddr: "127.0.0.1:0", Secret: secret, RelayIP: net.IPv4zero}},
		{"relay family mismatch", Config{ListenAddr: "127.0.0.1:0", Secret: secret, RelayIP: net.ParseIP("2001:db8::1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v, want ErrConfig", err)
			}
			t.Log(err)
		})
	}
}

func TestUnspecifiedListenWithRelayIP(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{ListenAddr: "0.0.0.0:0", RelayIP: net.IPv4(127, 0, 0, 1), Secret: testSecret(t),
		Logger: testLogger(t, "turn")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseFreesAllocations(t *testing.T) {
	checkLeaks(t)
	secret := testSecret(t)
	s, err := New(Config{ListenAddr: "127.0.0.1:0", Secret: secret, Logger: testLogger(t, "turn")})
	if err != nil {
		t.Fatal(err)
	}
	user, pass := Credentials(secret, "tech", time.Now().Add(time.Hour))
	for i := range 3 {
		if _, err := newClient(t, nil, s.Addr(), user, pass).allocate(t); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := s.Stats().Allocations; got != 0 {
		t.Fatalf("Stats.Allocations after Close = %d, want 0", got)
	}
}
