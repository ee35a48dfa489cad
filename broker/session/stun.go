package session

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/mesh/turnserver"
)

// stunPort is the broker's STUN port: binding requests are answered with
// the address seen, and the addresses of requests carrying a session token
// are remembered for the offer. The same port serves TURN (pion's server)
// for WebRTC sessions when the broker knows the address relayed candidates
// carry.
type stunPort struct {
	conn       net.PacketConn
	obs        *mesh.Observer
	turn       *turnserver.Server // nil without a relay address
	turnSecret []byte
}

// openSTUN opens the STUN port as cfg says, or returns nil when it is off.
func openSTUN(cfg *Config) (*stunPort, error) {
	if cfg.STUN == "off" {
		return nil, nil
	}
	listen := net.ListenPacket
	if cfg.Net != nil {
		listen = cfg.Net.ListenPacket
	}
	pc, err := listen("udp", cfg.STUN)
	if err != nil {
		return nil, fmt.Errorf("broker: stun listen %s: %w", cfg.STUN, err)
	}
	p := &stunPort{conn: pc, obs: mesh.NewObserver()}
	relayIP := net.ParseIP(cfg.TURNIP)
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); relayIP == nil && ok && !ua.IP.IsUnspecified() {
		relayIP = ua.IP
	}
	if relayIP == nil {
		cfg.Logger.Warn("TURN relay off: the STUN address is unspecified; set --turn-ip to the address peers reach this broker at")
		return p, nil
	}
	p.turnSecret = make([]byte, 32)
	rand.Read(p.turnSecret)
	p.turn, err = turnserver.New(turnserver.Config{PacketConn: p.obs.Wrap(pc), RelayIP: relayIP,
		Secret: p.turnSecret, MaxAllocations: cfg.TURNAllocations, Logger: cfg.Logger, RelayNet: cfg.Net})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("broker: turn: %w", err)
	}
	return p, nil
}

// run answers STUN until ctx ends (pion's TURN server reads the port
// itself when it runs), then closes the port.
func (p *stunPort) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if p.turn == nil {
			p.obs.Serve(p.conn)
		}
	}()
	<-ctx.Done()
	p.close()
	<-done
}

// close stops TURN and closes the socket; it is idempotent.
func (p *stunPort) close() {
	if p.turn != nil {
		p.turn.Close()
	}
	p.conn.Close()
}

func (p *stunPort) addr() *net.UDPAddr {
	ua, _ := p.conn.LocalAddr().(*net.UDPAddr)
	return ua
}
