package rtc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/readymesh/readymesh/mesh/turnserver"
)

// Benchmarks run on loopback. Compare BenchmarkBytesThroughput with
// BenchmarkTCPBaseline from the same run: the machine is shared and
// absolute figures drift, the ratio less so.

// benchBytes is what one op of the throughput benchmarks moves.
const benchBytes = 64 << 20

// benchConfig is loopbackConfig without test logging (which would cost
// more than the data path).
func benchConfig() Config {
	return Config{
		IncludeLoopback: true,
		IPFilter:        func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil },
		Logger:          slog.New(slog.DiscardHandler),
	}
}

// BenchmarkBytesThroughput moves 64 MiB per op one way over the "bytes"
// channel of a loopback session.
func BenchmarkBytesThroughput(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := connect(b, ctx, benchConfig(), benchConfig())
	benchCopy(b, p.off.Bytes(), p.ans.Bytes())
}

// BenchmarkTCPBaseline moves the same bytes over a loopback TCP
// connection, with the same write and read sizes.
func BenchmarkTCPBaseline(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	w, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r, ok := <-acc
	if !ok {
		b.Fatal("accept failed")
	}
	defer r.Close()
	benchCopy(b, w, r)
}

// benchCopy writes benchBytes per op to w in writeChunk pieces while a
// reader drains them from r.
func benchCopy(b *testing.B, w io.Writer, r io.Reader) {
	buf := make([]byte, writeChunk)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	for b.Loop() {
		done := make(chan error, 1)
		go func() {
			_, err := io.CopyBuffer(io.Discard, io.LimitReader(r, benchBytes), make([]byte, maxMessage))
			done <- err
		}()
		for sent := 0; sent < benchBytes; sent += len(buf) {
			if _, err := w.Write(buf); err != nil {
				b.Fatalf("write after %d bytes: %v", sent, err)
			}
		}
		if err := <-done; err != nil {
			b.Fatalf("read: %v", err)
		}
	}
}

// BenchmarkEchoLatency measures round trips of a 64-byte message on the
// echo channel of a loopback session and reports their p50 and p99.
func BenchmarkEchoLatency(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := connect(b, ctx, benchConfig(), benchConfig())
	echo := p.off.Echo()
	msg, buf := make([]byte, 64), make([]byte, maxMessage)
	var rtts []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := echo.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := echo.Read(buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	reportPercentiles(b, rtts)
}

// BenchmarkSetup measures Offer → both sessions open on loopback: with
// host candidates only, and with the broker's STUN and TURN on loopback
// too (gathering then waits for a Binding and an Allocate per side).
func BenchmarkSetup(b *testing.B) {
	b.Run("host", func(b *testing.B) { benchSetup(b, nil) })
	b.Run("stun+turn", func(b *testing.B) {
		secret := make([]byte, 32)
		srv, err := turnserver.New(turnserver.Config{ListenAddr: "127.0.0.1:0", Secret: secret})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		benchSetup(b, func(c *Config) { c.ICEServers = iceServers(srv.Addr(), secret) })
	})
}

func benchSetup(b *testing.B, edit func(*Config)) {
	cfg := benchConfig()
	if edit != nil {
		edit(&cfg)
	}
	var setups []time.Duration
	for b.Loop() {
		setups = append(setups, setupOnce(b, cfg))
	}
	reportPercentiles(b, setups)
}

// setupOnce opens one session and closes it, returning the time to open.
func setupOnce(b *testing.B, cfg Config) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	o, offer, err := Offer(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	a, answer, err := Answer(ctx, cfg, offer)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Session(ctx)
		errc <- err
	}()
	_, err = o.Accept(ctx, answer)
	err = errors.Join(err, <-errc)
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer() // closing is not part of setup
	_ = o.Close()
	_ = a.Close()
	b.StartTimer()
	return took
}

func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
