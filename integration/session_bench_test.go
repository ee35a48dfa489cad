package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// cpuSeconds is a process's user+system CPU time so far.
func cpuSeconds(tb testing.TB, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// BenchmarkSessionThroughput sends 256 MiB per op over a live session
// between the real binaries on loopback (meshctl connect --send), on the
// direct QUIC path and through the broker's relay, with plain TCP on
// loopback as the baseline in the same run. For the relay it also reports
// how many bits the broker moves per second of its own CPU time: the
// relay's cost per core.
func BenchmarkSessionThroughput(b *testing.B) {
	needBinaries(b)
	base := testDir(b)
	br := startBroker(b, base, "bench", time.Second)
	admin := br.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(b, base, admin.token("acme", 1, time.Hour).Token, "pc-01", "windows-ready.json")
	a.start()
	waitOnline(b, admin, 20*time.Second, a)
	const size = 256 << 20
	for _, tr := range []string{wire.TransportQUIC, wire.TransportRelay} {
		b.Run(tr, func(b *testing.B) {
			b.SetBytes(size)
			var mbps, cpu float64
			for b.Loop() {
				before := cpuSeconds(b, br.proc.cmd.Process.Pid)
				out := admin.ok("connect", a.full(), "--transport", tr, "--send", "256MiB", "--json")
				cpu += cpuSeconds(b, br.proc.cmd.Process.Pid) - before
				var r connectResult
				if err := json.Unmarshal([]byte(out), &r); err != nil || r.Sent != size {
					b.Fatalf("connect: %v: %s", err, out)
				}
				mbps += r.Mbps
			}
			b.ReportMetric(mbps/float64(b.N), "Mbit/s")
			if tr == wire.TransportRelay && cpu > 0 {
				b.ReportMetric(float64(size)*8*float64(b.N)/cpu/1e9, "relay-Gbit/s-per-broker-core")
			}
		})
	}
	b.Run("tcp-baseline", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}()
		b.SetBytes(size)
		buf := make([]byte, 64<<10)
		var mbps float64
		for b.Loop() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for left := size; left > 0; left -= len(buf) {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			mbps += float64(size) * 8 / time.Since(start).Seconds() / 1e6
			c.Close()
		}
		b.ReportMetric(mbps/float64(b.N), "Mbit/s")
	})
}
