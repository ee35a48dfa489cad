package sessiond

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/collect"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// runBridge keeps the bridge and its presence stream up until ctx is done.
// When a broker cannot be reached it moves straight on to the next one it
// knows (home region first); only when every broker has failed does it
// back off, with jittered exponential delays, so a dead broker costs its
// agents one dial timeout and a broker restart does not bring every agent
// back in the same second.
func (a *Agent) runBridge(ctx context.Context) {
	bo := bridge.Backoff{Min: a.cfg.ReconnectMin, Max: a.cfg.ReconnectMax}
	for ctx.Err() == nil {
		a.waitHold(ctx)
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		target := a.brokers.current()
		err := a.presence(ctx, target)
		a.setUp(false, "", fmt.Sprint(err))
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errLeft) {
			// The agent closed the bridge itself, with a notice; the hold
			// keeps it down until the agent comes back.
			if id, err := peer.Decode(target.PeerID); err == nil {
				a.host.Network().ClosePeer(id)
			}
			bo.Reset()
			continue
		}
		// A bridge that stayed up a while was a success: start the backoff
		// over so a broker restart is retried quickly.
		if time.Since(start) > 30*time.Second {
			bo.Reset()
			a.brokers.succeeded()
		}
		wait := reconnectWait(!a.helloAt.Before(start), a.spread, a.brokers.failed(), &bo)
		var removed *removedError
		if errors.As(err, &removed) {
			wait = a.removedFromFleet(removed)
		} else {
			a.log.Warn("bridge down; reconnecting", "broker", target.PeerID, "err", err,
				"next", a.brokers.current().PeerID, "in", wait.Round(time.Millisecond))
		}
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

// dialBroker connects h to the broker at ai unless it is connected. The
// agent paces its reconnects itself (runBridge's full-jitter backoff), so
// the dial skips libp2p's own per-address backoff: after each failed dial
// libp2p refuses to dial that address again for 5 s, then 6, 9, 14 s and
// on up to 5 minutes, without trying, which after a broker restart would
// keep an agent away long after the broker took connections again, and
// would put every agent's retries back in step.
func dialBroker(ctx context.Context, h host.Host, ai peer.AddrInfo) error {
	if h.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	return h.Connect(network.WithForceDirectDial(ctx, "sessiond paces its own reconnects"), ai)
}

// reconnectWait is how long runBridge waits before its next dial. After
// a bridge that was up (its broker accepted the hello) drops, the first
// dial waits a uniform draw from the window that broker gave: when a
// broker restarts or fails, thousands of agents lose their bridge in the
// same instant, and the window spreads them over what the broker (or the
// one they fail over to) admits, leaving room for technicians. Otherwise
// the next broker is tried at once, and when every broker has failed the
// full-jitter backoff paces the round.
func reconnectWait(wasUp bool, spread time.Duration, allFailed bool, bo *bridge.Backoff) time.Duration {
	wait := 100 * time.Millisecond
	if allFailed {
		wait = bo.Next()
	}
	if wasUp && spread > 0 {
		wait = max(wait, time.Duration(rand.Int64N(int64(spread)+1)))
	}
	return wait
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
	if err := dialBroker(dctx, a.host, ai); err != nil {
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
	returned := a.takeReturned()
	h := wire.Hello{MachineID: a.key.ID.String(), AgentVersion: buildinfo.Version, Versions: wire.OurVersions(),
		Returned: returned, UDPBlockedSince: a.udpFallback(ai.Addrs, s.Conn().RemoteMultiaddr())}
	if err := wire.Write(s, &h); err != nil {
		a.putReturned(returned)
		return err
	}
	r := wire.NewReader(s)
	var hello wire.HelloReply
	if err := r.Read(wire.MaxControl, &hello); err != nil {
		a.putReturned(returned)
		return fmt.Errorf("presence hello: %w", err)
	}
	if hello.Error != nil {
		if hello.Error.Code == wire.CodeRemoved {
			return &removedError{msg: hello.Error.Message}
		}
		return fmt.Errorf("broker refused presence: %s", hello.Error.Message)
	}
	s.SetDeadline(time.Time{})
	every := time.Duration(hello.HeartbeatMS) * time.Millisecond
	if every <= 0 {
		every = 5 * time.Second
	}
	a.brokers.succeeded()
	a.spread = time.Duration(hello.ReconnectSpreadMS) * time.Millisecond
	a.helloAt = time.Now()
	a.learnBrokers(hello.Brokers, hello.Left)
	a.learnPolicy(hello.Policy)
	a.setUp(true, ai.ID, "")
	a.log.Info("bridge up", "broker", ai.ID, "heartbeat", every, "transport", s.Conn().RemoteMultiaddr())
	err = a.heartbeats(ctx, s, r, every)
	clean = err == nil
	return err
}

// learnBrokers merges the brokers a broker listed, forgets those it says
// left, and keeps the result in the local database, so a restarted agent
// can fail over even if its own broker is the one that is down. It runs
// on the bridge goroutine only.
func (a *Agent) learnBrokers(infos []wire.BrokerInfo, left []string) {
	usable := make([]wire.BrokerInfo, 0, len(infos))
	for _, in := range infos {
		ai, err := bridge.AddrInfo(in)
		if err != nil {
			a.log.Warn("broker list: skipping a broker that cannot be dialled", "broker", in.Name, "err", err)
			continue
		}
		// A broker lists its own addresses with /p2p/ID and the others'
		// without: keep one form, so two brokers' lists compare equal.
		in.Addrs = make([]string, len(ai.Addrs))
		for i, addr := range ai.Addrs {
			in.Addrs[i] = addr.String()
		}
		usable = append(usable, in)
	}
	learned := a.brokers.learn(usable)
	if !a.brokers.forget(left) && !learned {
		return
	}
	list := a.brokers.all()
	names := make([]string, len(list))
	for i, b := range list {
		names[i] = b.Name
	}
	a.log.Info("broker list changed", "known", len(list), "brokers", strings.Join(names, ","))
	a.enrolment.Brokers = list
	if _, err := a.db.EditEnrolment(func(e *localdb.Enrolment) { e.Brokers = list }); err != nil {
		a.log.Warn("could not keep the broker list", "err", err)
	}
}

// heartbeats sends one heartbeat per interval until the stream fails, the
// broker falls silent (see acks) or ctx is done. A goroutine it owns reads
// the acks and hands them over, so what they carry (a check-in request, a
// new broker list) is acted on here, on the bridge goroutine.
func (a *Agent) heartbeats(ctx context.Context, s network.Stream, r *wire.Reader, every time.Duration) error {
	acks := make(chan wire.HeartbeatAck)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done) // before the stream's reset ends the reader's Read
	go readAcks(r, acks, readErr, done)
	t := time.NewTicker(every)
	defer t.Stop()
	overdue := time.NewTimer(time.Hour)
	defer overdue.Stop()
	w := ackWatch{every: every}
	var seq uint64
	if err := a.beat(s, &seq, every); err != nil {
		return err
	}
	w.sent(seq, time.Now())
	leave := func(l wire.Leaving) {
		a.sendLeaving(s, &seq, l, acks, readErr, every)
		closePresence(s, acks, readErr, every)
	}
	if l, _, _ := a.held(); l != nil {
		// Held while this bridge came up (the machine went to sleep as
		// it dialled): say so and go.
		leave(*l)
		return errLeft
	}
	for {
		overdue.Reset(w.until(time.Now()))
		_, _, holdCh := a.held()
		select {
		case <-ctx.Done():
			leave(a.stopNotice(ctx))
			return nil
		case <-holdCh:
			if l, _, _ := a.held(); l != nil {
				leave(*l)
				return errLeft
			}
		case err := <-readErr:
			return fmt.Errorf("presence: %w", err)
		case ack := <-acks:
			w.acked(ack.Seq, time.Now())
			if ack.CheckIn {
				go a.requestCheckIn(ctx)
			}
			if len(ack.Brokers) > 0 || len(ack.Left) > 0 {
				a.learnBrokers(ack.Brokers, ack.Left)
			}
			if ack.Policy != nil {
				a.learnPolicy(ack.Policy)
			}
		case <-overdue.C:
			if err := w.silent(time.Now()); err != nil {
				return err
			}
		case <-t.C:
			if err := a.beat(s, &seq, every); err != nil {
				return err
			}
			w.sent(seq, time.Now())
		}
	}
}

// readAcks reads acks and hands each to acks, until the stream fails
// (the error goes to readErr, which has room for it) or done is closed.
func readAcks(r *wire.Reader, acks chan<- wire.HeartbeatAck, readErr chan<- error, done <-chan struct{}) {
	for {
		var ack wire.HeartbeatAck
		if err := r.Read(wire.MaxControl, &ack); err != nil {
			readErr <- err
			return
		}
		select {
		case acks <- ack:
		case <-done:
			return
		}
	}
}

// closePresence closes the presence stream cleanly: it half-closes it so
// the broker reads EOF and shows the machine offline now, then waits
// (bounded) for the broker's side to close too, dropping acks still on
// their way. Closing both sides at once could reset the stream before the
// FIN is delivered, and the broker would log a lost bridge.
func closePresence(s network.Stream, acks <-chan wire.HeartbeatAck, readErr <-chan error, every time.Duration) {
	s.CloseWrite()
	limit := time.NewTimer(min(every, time.Second))
	defer limit.Stop()
	for {
		select {
		case <-acks:
			continue
		case <-readErr:
		case <-limit.C:
		}
		s.Close()
		return
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
