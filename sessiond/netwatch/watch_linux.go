package netwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// groups are the route netlink multicast groups Watch joins: addresses
// and routes, for IPv4 and IPv6.
const groups = unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

// readBuffer is the socket's receive buffer. A bigger one loses fewer
// events in a storm (a VPN installing thousands of routes); a lost event
// is still noticed, as ENOBUFS.
const readBuffer = 1 << 20

// Watch subscribes to the kernel's address and route events in the
// calling process's network namespace and delivers one Change per burst of
// relevant events (see Config.Debounce).
//
// The channel is closed when ctx is done, after the netlink socket is
// closed and the goroutines Watch started have exited. It is also closed,
// with an error logged, if reading from the socket fails; the caller can
// call Watch again.
func Watch(ctx context.Context, cfg Config) (<-chan Change, error) {
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("netwatch: subscribe to route netlink: %w", err)
	}
	log := cfg.logger()
	if err := conn.SetReadBuffer(readBuffer); err != nil {
		log.Debug("netwatch: cannot grow receive buffer", "err", err)
	}
	out := make(chan Change, 1)
	go run(ctx, conn, cfg.debounce(), log, out)
	return out, nil
}

// run owns conn and out. It debounces until ctx is done or the reader
// stops, then shuts down in order: tell the reader it is stopping, close
// the socket (which unblocks the reader's Receive), wait for the reader,
// and only then close out.
func run(ctx context.Context, conn *netlink.Conn, window time.Duration, log *slog.Logger, out chan<- Change) {
	events := make(chan int)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		read(conn, events, stop, log)
	}()
	debounce(ctx, events, window, out)
	close(stop)
	conn.Close()
	<-readerDone
	close(out)
}

// read receives netlink messages and sends the number of relevant ones in
// each batch to events. It closes events when the socket fails, and
// returns without doing so once stop is closed.
func read(conn *netlink.Conn, events chan<- int, stop <-chan struct{}, log *slog.Logger) {
	for {
		msgs, err := conn.Receive()
		n := countRelevant(msgs)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped events: something changed, we cannot say what.
			log.Debug("netwatch: events lost, receive buffer overflowed")
			n = 1
		default:
			select {
			case <-stop:
			default:
				log.Error("netwatch: reading route netlink failed; watch ends", "err", err)
				close(events)
			}
			return
		}
		if n == 0 {
			continue
		}
		select {
		case events <- n:
		case <-stop:
			return
		}
	}
}

// countRelevant counts the messages that describe a network change.
func countRelevant(msgs []netlink.Message) int {
	n := 0
	for _, m := range msgs {
		if relevant(m) {
			n++
		}
	}
	return n
}

// rtmsgLen is the size of struct rtmsg, which starts a route message.
const rtmsgLen = 12

// relevant reports whether m is an address change or a default route
// change. A route is a default route when its destination prefix length
// (rtmsg.rtm_dst_len, the second byte) is zero.
func relevant(m netlink.Message) bool {
	switch m.Header.Type {
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		// IPv6 link-local addresses come and go with every link and
		// announce duplicate-address detection a moment after each one
		// appears; they say nothing about how the machine reaches its
		// broker. ifaddrmsg: family, prefix length, flags, scope, index.
		return !(len(m.Data) >= 4 && m.Data[0] == unix.AF_INET6 && m.Data[3] == unix.RT_SCOPE_LINK)
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		return len(m.Data) >= rtmsgLen && m.Data[1] == 0
	}
	return false
}
