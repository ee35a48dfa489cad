package rtc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readymesh/readymesh/mesh/turnserver"
)

type atomicBool = atomic.Bool

func isFailed(err error) bool { return errors.Is(err, ErrFailed) }

// loopbackConfig keeps every candidate on 127.0.0.1, so the test sends
// nothing beyond loopback.
func loopbackConfig(t testing.TB, name string) Config {
	return Config{
		IncludeLoopback: true,
		IPFilter:        func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil },
		Logger:          testLogger(t, name),
	}
}

// TestLoopback connects over the host's real UDP stack on 127.0.0.1, with
// the broker's STUN/TURN server on loopback too.
func TestLoopback(t *testing.T) {
	checkLeaks(t)
	secret := randomBytes(t, 32)
	srv, err := turnserver.New(turnserver.Config{ListenAddr: "127.0.0.1:0", Secret: secret, Logger: testLogger(t, "turn")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	offCfg, ansCfg := loopbackConfig(t, "offerer"), loopbackConfig(t, "answerer")
	offCfg.ICEServers = iceServers(srv.Addr(), secret)
	ansCfg.ICEServers = offCfg.ICEServers

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, offCfg, ansCfg)
	path := p.off.Path()
	t.Logf("path %v; setup %v (connect after answer %v)", path, p.setup.Round(time.Millisecond), p.connect.Round(time.Millisecond))
	if path.Kind != PathDirect {
		t.Errorf("path %v, want %s", path, PathDirect)
	}
	checkEcho(t, p.off)
	if st := srv.Stats(); st.Allocations != 2 {
		t.Errorf("TURN allocations %d, want one per side gathered", st.Allocations)
	}
}

func TestEchoAndPing(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, loopbackConfig(t, "offerer"), loopbackConfig(t, "answerer"))
	checkEcho(t, p.off)

	// A message the caller left unread does not confuse Ping.
	if _, err := p.off.Echo().Write([]byte("left unread")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		rtt, err := p.off.Ping(ctx)
		if err != nil {
			t.Fatalf("Ping %d: %v", i, err)
		}
		if rtt <= 0 || rtt > 5*time.Second {
			t.Fatalf("Ping %d: implausible %v", i, rtt)
		}
	}
	// A cancelled context ends a Ping at once, and the next one works.
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := p.off.Ping(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping with cancelled ctx: %v", err)
	}
	if _, err := p.off.Ping(ctx); err != nil {
		t.Fatalf("Ping after a cancelled one: %v", err)
	}

	// The answerer serves echo; its own use of the channel is refused.
	if _, err := p.ans.Echo().Write([]byte("x")); !errors.Is(err, ErrAnswererEcho) {
		t.Errorf("answerer Echo().Write: %v, want ErrAnswererEcho", err)
	}
	if _, err := p.ans.Ping(ctx); !errors.Is(err, ErrAnswererEcho) {
		t.Errorf("answerer Ping: %v, want ErrAnswererEcho", err)
	}
}

// TestBytesTransfer moves 4 MiB each way at once over "bytes" and checks
// them intact, then that Close delivers EOF after the last byte.
func TestBytesTransfer(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := connect(t, ctx, loopbackConfig(t, "offerer"), loopbackConfig(t, "answerer"))
	const size = 4 << 20
	up, down := randomBytes(t, size), randomBytes(t, size)

	// Odd write and read sizes exercise the chunking and the read buffer.
	send := func(w io.Writer, data []byte) error {
		for len(data) > 0 {
			n := min(len(data), 100_003)
			if _, err := w.Write(data[:n]); err != nil {
				return err
			}
			data = data[n:]
		}
		return nil
	}
	recv := func(r io.Reader, n int) ([]byte, error) {
		got := make([]byte, 0, n)
		buf := make([]byte, 7_777)
		for len(got) < n {
			k, err := r.Read(buf[:min(len(buf), n-len(got))])
			got = append(got, buf[:k]...)
			if err != nil {
				return got, err
			}
		}
		return got, nil
	}
	errc := make(chan error, 2)
	go func() { errc <- send(p.off.Bytes(), up) }()
	go func() { errc <- send(p.ans.Bytes(), down) }()
	start := time.Now()
	gotUp, err := recv(p.ans.Bytes(), size)
	if err != nil {
		t.Fatalf("answerer read after %d bytes: %v", len(gotUp), err)
	}
	gotDown, err := recv(p.off.Bytes(), size)
	if err != nil {
		t.Fatalf("offerer read after %d bytes: %v", len(gotDown), err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	t.Logf("2 × %d MiB in %v", size>>20, time.Since(start).Round(time.Millisecond))
	if sha256.Sum256(gotUp) != sha256.Sum256(up) || sha256.Sum256(gotDown) != sha256.Sum256(down) {
		t.Fatal("data corrupted in transit")
	}

	// Write, Close: the peer reads everything, then EOF.
	tail := randomBytes(t, 300_000)
	if err := send(p.off.Bytes(), tail); err != nil {
		t.Fatal(err)
	}
	if err := p.off.Bytes().Close(); err != nil {
		t.Fatalf("Close bytes: %v", err)
	}
	rest, err := io.ReadAll(p.ans.Bytes())
	if err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	if !bytes.Equal(rest, tail) {
		t.Fatalf("read %d bytes before EOF, want the %d written", len(rest), len(tail))
	}
}

// TestCloseEndsPeer checks that closing one side closes the other's Done
// at once (DTLS close_notify), not after ICE timeouts.
func TestCloseEndsPeer(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, loopbackConfig(t, "offerer"), loopbackConfig(t, "answerer"))
	if err := p.ans.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.ans.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !errors.Is(p.ans.Err(), ErrClosed) {
		t.Errorf("closed side Err() = %v, want ErrClosed", p.ans.Err())
	}
	select {
	case <-p.off.Done():
		t.Logf("peer saw the close: %v", p.off.Err())
	case <-time.After(3 * time.Second):
		t.Fatal("offerer's Done still open 3 s after the answerer closed")
	}
	if _, err := p.off.Ping(ctx); err == nil {
		t.Error("Ping on a closed session succeeded")
	}
}

// TestAcceptContext checks that Accept gives up when ctx ends while the
// peer never answers ICE checks, and closes the Offerer.
func TestAcceptContext(t *testing.T) {
	checkLeaks(t)
	o, _, err := Offer(context.Background(), loopbackConfig(t, "offerer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	// An answer from a peer that is gone: its candidates lead nowhere.
	a, answer, err := Answer(context.Background(), loopbackConfig(t, "answerer"), mustOffer(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = o.Accept(ctx, answer)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Accept returned %v after its deadline", d)
	}
	t.Log(err)
	if _, err := o.Accept(context.Background(), answer); !errors.Is(err, ErrAccepted) {
		t.Errorf("second Accept: %v, want ErrAccepted", err)
	}
}

// mustOffer returns a real offer SDP from a throwaway Offerer.
func mustOffer(t testing.TB) string {
	t.Helper()
	o, offer, err := Offer(context.Background(), loopbackConfig(t, "offer-maker"))
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Close()
	return offer
}
