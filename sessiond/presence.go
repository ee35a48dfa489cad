package sessiond

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/collect"
)

// errBrokerSilent ends a bridge whose broker stopped answering heartbeats.
var errBrokerSilent = errors.New("broker stopped answering heartbeats")

// runBridge keeps the bridge and its presence stream up until ctx is done.
// When a broker cannot be reached it moves straight on to the next one it
// knows (home region first); only when every broker has failed does it
// back off, with jittered exponential delays, so a dead broker costs its
// agents one dial timeout and a broker restart does not bring every agent
// back in the same second.
func (a *Agent) runBridge(ctx context.Context) {
	bo := bridge.Backoff{Min: a.cfg.ReconnectMin, Max: a.cfg.ReconnectMax}
	for ctx.Err() == nil {
		start := time.Now()
		target := a.brokers.current()
		err := a.presence(ctx, target)
		a.setUp(false, "", fmt.Sprint(err))
		if ctx.Err() != nil {
			return
		}
		// A bridge that stayed up a while was a success: start the backoff
		// over so a broker restart is retried quickly.
		if time.Since(start) > 30*time.Second {
			bo.Reset()
			a.brokers.succeeded()
		}
		wait := 100 * time.Millisecond
		if a.brokers.failed() {
			wait = bo.Next()
		}
		a.log.Warn("bridge down; reconnecting", "broker", target.PeerID, "err", err,
			"next", a.brokers.current().PeerID, "in", wait.Round(time.Millisecond))
		if id, err := peer.Decode(target.PeerID); err == nil {
			a.host.Network().ClosePeer(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// presence dials broker, opens the presence stream and sends heartbeats
// until the stream fails or ctx is done. On ctx done it closes the stream
// cleanly and returns nil.
func (a *Agent) presence(ctx context.Context, broker wire.BrokerInfo) error {
	ai, err := bridge.AddrInfo(broker)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.host.Connect(dctx, ai); err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	s, err := a.host.NewStream(dctx, ai.ID, wire.ProtoPresence)
	if err != nil {
		return fmt.Errorf("open presence: %w", err)
	}
	clean := false
	defer func() {
		if !clean {
			s.Reset()
		}
	}()
	s.SetDeadline(time.Now().Add(15 * time.Second))
	if err := wire.Write(s, &wire.Hello{MachineID: a.key.ID.String(), AgentVersion: Version}); err != nil {
		return err
	}
	r := wire.NewReader(s)
	var hello wire.HelloReply
	if err := r.Read(wire.MaxControl, &hello); err != nil {
		return fmt.Errorf("presence hello: %w", err)
	}
	if hello.Error != nil {
		return fmt.Errorf("broker refused presence: %s", hello.Error.Message)
	}
	s.SetDeadline(time.Time{})
	every := time.Duration(hello.HeartbeatMS) * time.Millisecond
	if every <= 0 {
		every = 5 * time.Second
	}
	a.brokers.succeeded()
	a.learnBrokers(hello.Brokers)
	a.setUp(true, ai.ID, "")
	a.log.Info("bridge up", "broker", ai.ID, "heartbeat", every, "transport", s.Conn().RemoteMultiaddr())
	err = a.heartbeats(ctx, s, r, every)
	clean = err == nil
	return err
}

// learnBrokers merges the brokers a broker listed and keeps them in the
// local database, so a restarted agent can fail over even if its own broker is the
// one that is down.
func (a *Agent) learnBrokers(infos []wire.BrokerInfo) {
	if !a.brokers.learn(infos) {
		return
	}
	a.enrolment.Brokers = a.brokers.all()
	if err := a.db.SetEnrolment(a.enrolment); err != nil {
		a.log.Warn("could not keep the broker list", "err", err)
	}
}

// heartbeats sends one heartbeat per interval and reads the acks on a
// second goroutine it owns.
func (a *Agent) heartbeats(ctx context.Context, s network.Stream, r *wire.Reader, every time.Duration) error {
	var lastAck atomic.Int64
	lastAck.Store(time.Now().UnixNano())
	readErr := make(chan error, 1)
	go func() {
		for {
			var ack wire.HeartbeatAck
			if err := r.Read(wire.MaxControl, &ack); err != nil {
				readErr <- err
				return
			}
			lastAck.Store(time.Now().UnixNano())
			if ack.CheckIn {
				go a.requestCheckIn(ctx)
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	var seq uint64
	for {
		if err := a.beat(s, &seq, every); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			// Clean close: half-close so the broker reads EOF and shows us
			// offline now, then wait (bounded) for its side to close too.
			// Closing both sides at once could reset the stream before the
			// FIN is delivered, and the broker would log a lost bridge.
			s.CloseWrite()
			select {
			case <-readErr:
			case <-time.After(min(every, time.Second)):
			}
			s.Close()
			return nil
		case err := <-readErr:
			return fmt.Errorf("presence: %w", err)
		case <-t.C:
		}
		if time.Since(time.Unix(0, lastAck.Load())) > 3*every {
			return errBrokerSilent
		}
	}
}

func (a *Agent) beat(s network.Stream, seq *uint64, every time.Duration) error {
	*seq++
	hb := wire.Heartbeat{Seq: *seq}
	if l, err := collect.Load1(); err == nil {
		hb.Load1 = l
	}
	if users, err := collect.Users(); err == nil {
		hb.Users, hb.UserPresent = users, len(users) > 0
	}
	hb.CheckInSeq = a.ackedSeq.Load()
	s.SetWriteDeadline(time.Now().Add(every))
	if err := wire.Write(s, &hb); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}
