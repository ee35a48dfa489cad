package netwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The constants in routemsg.go must be the system's: each line fails to
// compile unless its two values are equal (the index must be 0).
var (
	_ = [1]struct{}{}[rtmAdd-unix.RTM_ADD]
	_ = [1]struct{}{}[rtmDelete-unix.RTM_DELETE]
	_ = [1]struct{}{}[rtmChange-unix.RTM_CHANGE]
	_ = [1]struct{}{}[rtmNewAddr-unix.RTM_NEWADDR]
	_ = [1]struct{}{}[rtmDelAddr-unix.RTM_DELADDR]
	_ = [1]struct{}{}[rtmIfInfo-unix.RTM_IFINFO]
	_ = [1]struct{}{}[rtmVersion-unix.RTM_VERSION]
	_ = [1]struct{}{}[rtMsghdrLen-unix.SizeofRtMsghdr]
	_ = [1]struct{}{}[ifaMsghdrLen-unix.SizeofIfaMsghdr]
	_ = [1]struct{}{}[ifMsghdrLen-unix.SizeofIfMsghdr]
	_ = [1]struct{}{}[rtaxDst-unix.RTAX_DST]
	_ = [1]struct{}{}[rtaxNetmask-unix.RTAX_NETMASK]
	_ = [1]struct{}{}[rtaxIfa-unix.RTAX_IFA]
	_ = [1]struct{}{}[rtaxCount-unix.RTAX_MAX]
	_ = [1]struct{}{}[rtfHost-unix.RTF_HOST]
	_ = [1]struct{}{}[iffUp-unix.IFF_UP]
	_ = [1]struct{}{}[iffLoopback-unix.IFF_LOOPBACK]
	_ = [1]struct{}{}[iffRunning-unix.IFF_RUNNING]
	_ = [1]struct{}{}[afInetDarwin-unix.AF_INET]
	_ = [1]struct{}{}[afInet6Darwin-unix.AF_INET6]
)

// readBuffer is the routing socket's receive buffer. A bigger one loses
// fewer events in a storm (a VPN installing thousands of routes).
const readBuffer = 1 << 20

// maxRead is the largest read from the routing socket. The kernel writes
// one message per read, and a message holds at most a header and eight
// socket addresses.
const maxRead = 4096

// Watch opens a routing socket, which the kernel copies every change of
// addresses, routes and interfaces to, and delivers one Change per burst
// of relevant messages (see Config.Debounce and routeFilter).
//
// The channel is closed when ctx is done, after the socket is closed and
// the goroutines Watch started have exited. It is also closed, with an
// error logged, if reading from the socket fails; the caller can call
// Watch again.
func Watch(ctx context.Context, cfg Config) (<-chan Change, error) {
	f, err := openRoutingSocket(cfg.logger())
	if err != nil {
		return nil, err
	}
	filter := &routeFilter{name: interfaceName}
	seedLinks(&filter.links)
	out := make(chan Change, 1)
	go run(ctx, f, filter, cfg.debounce(), cfg.logger(), out)
	return out, nil
}

// openRoutingSocket opens a PF_ROUTE socket for all address families. It
// is made non-blocking so that the runtime's poller waits on it and
// closing the file wakes a blocked Read.
func openRoutingSocket(log *slog.Logger) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netwatch: open routing socket: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netwatch: make routing socket non-blocking: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer); err != nil {
		log.Debug("netwatch: cannot grow receive buffer", "err", err)
	}
	return os.NewFile(uintptr(fd), "routing socket"), nil
}

// seedLinks records which interfaces are up now, so that the first
// RTM_IFINFO of an interface counts only if it changes that.
func seedLinks(l *links[uint16]) {
	ifs, err := net.Interfaces()
	if err != nil {
		return // each interface's first message up then counts once
	}
	for _, ifi := range ifs {
		l.set(uint16(ifi.Index), ifi.Flags&(net.FlagUp|net.FlagRunning) == net.FlagUp|net.FlagRunning)
	}
}

// interfaceName returns the name of the interface with that index, or ""
// when it is gone.
func interfaceName(index int) string {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return ""
	}
	return ifi.Name
}

// run owns f and out. It debounces until ctx is done or the reader stops,
// then shuts down in order: tell the reader it is stopping, close the
// socket (which wakes the reader's Read), wait for the reader, and only
// then close out.
func run(ctx context.Context, f *os.File, filter *routeFilter, window time.Duration, log *slog.Logger, out chan<- Change) {
	events := make(chan int)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		read(f, filter, events, stop, log)
	}()
	debounce(ctx, events, window, out)
	close(stop)
	f.Close()
	<-readerDone
	close(out)
}

// read reads routing messages and sends the number of relevant ones in
// each read to events. It closes events when the socket fails, and returns
// without doing so once stop is closed.
func read(f *os.File, filter *routeFilter, events chan<- int, stop <-chan struct{}, log *slog.Logger) {
	buf := make([]byte, maxRead)
	for {
		n, err := f.Read(buf)
		count := 0
		switch {
		case err == nil:
			var perr error
			if count, perr = filter.count(buf[:n]); perr != nil {
				log.Debug("netwatch: malformed routing message", "err", perr)
			}
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped messages: something changed, we cannot say what.
			log.Debug("netwatch: routing messages lost, receive buffer overflowed")
			count = 1
		default:
			select {
			case <-stop:
			default:
				log.Error("netwatch: reading routing socket failed; watch ends", "err", err)
				close(events)
			}
			return
		}
		if count == 0 {
			continue
		}
		select {
		case events <- count:
		case <-stop:
			return
		}
	}
}
