package bridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

func TestListenAddrs(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  []string // nil with err set means refused
		err   string
	}{
		{name: "nil", specs: nil, want: nil},
		{name: "loopback port 0", specs: []string{"127.0.0.1:0"},
			want: []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"}},
		{name: "websocket on port+1", specs: []string{"0.0.0.0:7400"},
			want: []string{"/ip4/0.0.0.0/udp/7400/quic-v1", "/ip4/0.0.0.0/tcp/7400", "/ip4/0.0.0.0/tcp/7401/ws"}},
		{name: "highest port", specs: []string{"10.0.0.1:65534"},
			want: []string{"/ip4/10.0.0.1/udp/65534/quic-v1", "/ip4/10.0.0.1/tcp/65534", "/ip4/10.0.0.1/tcp/65535/ws"}},
		{name: "ipv6", specs: []string{"[::1]:7400"},
			want: []string{"/ip6/::1/udp/7400/quic-v1", "/ip6/::1/tcp/7400", "/ip6/::1/tcp/7401/ws"}},
		{name: "ipv6 any", specs: []string{"[::]:0"},
			want: []string{"/ip6/::/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/tcp/0/ws"}},
		{name: "ipv4-mapped ipv6 is ipv4", specs: []string{"[::ffff:192.0.2.1]:9"},
			want: []string{"/ip4/192.0.2.1/udp/9/quic-v1", "/ip4/192.0.2.1/tcp/9", "/ip4/192.0.2.1/tcp/10/ws"}},
		{name: "multiaddr passthrough", specs: []string{"/ip4/127.0.0.1/tcp/1234", "/ip6/::1/udp/0/quic-v1"},
			want: []string{"/ip4/127.0.0.1/tcp/1234", "/ip6/::1/udp/0/quic-v1"}},
		{name: "mixed", specs: []string{"/ip4/127.0.0.1/tcp/1", "127.0.0.1:2"},
			want: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/2/quic-v1", "/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/3/ws"}},
		{name: "no port", specs: []string{"127.0.0.1"}, err: "missing port"},
		{name: "host name", specs: []string{"localhost:7400"}, err: "must be an IP address"},
		{name: "empty host means every IPv4 address", specs: []string{":7400"},
			want: []string{"/ip4/0.0.0.0/udp/7400/quic-v1", "/ip4/0.0.0.0/tcp/7400", "/ip4/0.0.0.0/tcp/7401/ws"}},
		{name: "port 65535 leaves no websocket port", specs: []string{"127.0.0.1:65535"}, err: "bad port"},
		{name: "negative port", specs: []string{"127.0.0.1:-1"}, err: "bad port"},
		{name: "named port", specs: []string{"127.0.0.1:http"}, err: "bad port"},
		{name: "bad multiaddr", specs: []string{"/ip4/999.0.0.1/tcp/1"}, err: "999.0.0.1"},
		{name: "unknown protocol", specs: []string{"/carrier-pigeon/1"}, err: "carrier-pigeon"},
		{name: "empty spec", specs: []string{""}, err: "listen address"},
		{name: "one bad spec spoils all", specs: []string{"127.0.0.1:0", "nope"}, err: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenAddrs(tt.specs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v; want an error mentioning %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("got %q\nwant %q", s, tt.want)
			}
		})
	}
}

// newID returns a fresh peer ID.
func newID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func TestResolveBrokerFile(t *testing.T) {
	id := newID(t).String()
	info := wire.BrokerInfo{PeerID: id, Name: "eu-1", Region: "eu", HTTP: "127.0.0.1:7480", Addrs: []string{
		"/ip4/127.0.0.1/udp/7400/quic-v1/p2p/" + id, "/ip4/127.0.0.1/tcp/7400/p2p/" + id}}
	raw, _ := json.MarshalIndent(info, "", "  ")
	dir := t.TempDir()
	path := filepath.Join(dir, "broker.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveBroker(" " + path + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, info) {
		t.Errorf("got %+v, want %+v", got, info)
	}
	t.Chdir(dir)
	if got, err := ResolveBroker("broker.json"); err != nil || got.PeerID != id {
		t.Errorf("relative path: %+v, %v", got, err)
	}

	bad := func(name string, content string, want string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ResolveBroker(p); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an error naming the file and saying %q", name, err, want)
		}
	}
	other := newID(t).String()
	bad("other.json", `{"peer_id":"`+id+`","bridge_addrs":["/ip4/127.0.0.1/tcp/1/p2p/`+other+`"]}`, "not the pinned broker")
	bad("noaddr.json", `{"peer_id":"`+id+`","bridge_addrs":[]}`, "no addresses")
	bad("badid.json", `{"peer_id":"Qmnope","bridge_addrs":["/ip4/127.0.0.1/tcp/1"]}`, "peer ID")
	bad("garbage.json", `peer_id = x`, "invalid character")
	if _, err := ResolveBroker("missing.json"); err == nil || !strings.Contains(err.Error(), "neither a broker.json file nor a multiaddr") {
		t.Errorf("missing file: %v", err)
	}
	// An absolute path that does not exist is taken for a multiaddr; the
	// error at least names what was typed.
	missing := filepath.Join(dir, "missing.json")
	if _, err := ResolveBroker(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing absolute file: %v", err)
	}
}

func TestResolveBrokerMultiaddrs(t *testing.T) {
	id, other := newID(t).String(), newID(t).String()
	quic := "/ip4/127.0.0.1/udp/7400/quic-v1/p2p/" + id
	tcp := "/ip6/::1/tcp/7400/p2p/" + id
	tests := []struct {
		name string
		in   string
		want []string // addresses; nil means refused
		err  string
	}{
		{name: "one", in: quic, want: []string{quic}},
		{name: "two of one peer", in: quic + "," + tcp, want: []string{quic, tcp}},
		{name: "surrounding space", in: "  " + quic + "\n", want: []string{quic}},
		{name: "no /p2p", in: "/ip4/127.0.0.1/tcp/7400", err: "no /p2p/PEER_ID"},
		{name: "one without /p2p", in: quic + ",/ip4/127.0.0.1/tcp/7400", err: "no /p2p/PEER_ID"},
		{name: "two peers", in: quic + ",/ip4/127.0.0.1/tcp/7400/p2p/" + other, err: "two peers"},
		{name: "bad multiaddr", in: "/ip4/127.0.0.1/tcp/notaport/p2p/" + id, err: "notaport"},
		{name: "empty part", in: quic + ",", err: "empty multiaddr"},
		// A peer ID alone cannot be dialled: there is nothing to pin it to.
		{name: "peer ID without transport", in: "/p2p/" + id, err: "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveBroker(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want an error mentioning %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PeerID != id || !reflect.DeepEqual(got.Addrs, tt.want) {
				t.Errorf("got %+v, want peer %s addrs %q", got, id, tt.want)
			}
			if _, err := AddrInfo(got); err != nil {
				t.Errorf("AddrInfo of a resolved broker: %v", err)
			}
		})
	}
}

func TestAddrInfo(t *testing.T) {
	id, other := newID(t), newID(t)
	tests := []struct {
		name  string
		info  wire.BrokerInfo
		addrs []string // transport parts; nil means refused
		err   string
	}{
		{name: "pinned addresses",
			info:  wire.BrokerInfo{PeerID: id.String(), Addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id.String(), "/ip4/127.0.0.1/tcp/2/p2p/" + id.String()}},
			addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1", "/ip4/127.0.0.1/tcp/2"}},
		{name: "address without /p2p",
			info:  wire.BrokerInfo{PeerID: id.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/2"}},
			addrs: []string{"/ip4/127.0.0.1/tcp/2"}},
		{name: "address naming another peer",
			info: wire.BrokerInfo{PeerID: id.String(), Addrs: []string{"/ip4/127.0.0.1/tcp/2/p2p/" + id.String(), "/ip4/127.0.0.1/tcp/3/p2p/" + other.String()}},
			err:  "not the pinned broker"},
		{name: "bad peer ID", info: wire.BrokerInfo{PeerID: "not-a-peer", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}, err: "peer ID"},
		{name: "empty peer ID", info: wire.BrokerInfo{Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}, err: "peer ID"},
		{name: "bad address", info: wire.BrokerInfo{PeerID: id.String(), Addrs: []string{"127.0.0.1:7400"}}, err: "127.0.0.1:7400"},
		{name: "no addresses", info: wire.BrokerInfo{PeerID: id.String()}, err: "no addresses"},
		{name: "only a peer ID", info: wire.BrokerInfo{PeerID: id.String(), Addrs: []string{"/p2p/" + id.String()}}, err: "address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ai, err := AddrInfo(tt.info)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v (%d addrs), %v; want an error mentioning %q", ai, len(ai.Addrs), err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ai.ID != id {
				t.Errorf("ID %s, want %s", ai.ID, id)
			}
			var got []string
			for _, a := range ai.Addrs {
				if len(a) == 0 {
					t.Errorf("empty address in %v", ai.Addrs)
				}
				got = append(got, a.String())
			}
			if !reflect.DeepEqual(got, tt.addrs) {
				t.Errorf("addrs %q, want %q", got, tt.addrs)
			}
		})
	}
}
