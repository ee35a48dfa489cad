package density

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The baseline is the least a Go server can hold per idle, authenticated
// connection: TLS 1.3 over TCP, one goroutine per connection blocked in a
// read through a 4 KiB buffer (the size of the broker's wire.Reader), and
// nothing else. It runs as its own process (this test binary re-executed
// with roleEnv=roleTLSServer) so it is measured as the broker is: by its
// /metrics, from the Go and process collectors.

const tlsServerName = "density.test"

// runTLSServer is the server role's main. It prints
// "tls ready addr=A http=H cert=BASE64DER" and serves until its stdin
// closes (the parent test stopped it or died).
func runTLSServer() int {
	cert, err := selfSigned()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls server:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls server:", err)
		return 1
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls server:", err)
		return 1
	}
	var online atomic.Int64
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		// The baseline's "online" is its idle connections, read as the
		// broker's machines online are (probe.online).
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: onlineMetric, Help: "Idle TLS connections held."},
			func() float64 { return float64(online.Load()) }))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(hln)
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	go acceptTLS(tls.NewListener(ln, conf), &online)
	fmt.Printf("tls ready addr=%s http=%s cert=%s\n", ln.Addr(), hln.Addr(),
		base64.StdEncoding.EncodeToString(cert.Certificate[0]))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func acceptTLS(ln net.Listener, online *atomic.Int64) {
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tls server: accept:", err)
			return
		}
		go serveIdle(c.(*tls.Conn), online)
	}
}

// serveIdle completes the handshake, then reads until the client leaves.
func serveIdle(c *tls.Conn, online *atomic.Int64) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	online.Add(1)
	defer online.Add(-1)
	br := bufio.NewReaderSize(c, 4096)
	for {
		if _, err := br.ReadByte(); err != nil {
			return
		}
	}
}

// selfSigned makes an ECDSA P-256 certificate for tlsServerName, in memory.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: tlsServerName},
		DNSNames:     []string{tlsServerName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// tlsServer is the running baseline server as the test sees it.
type tlsServer struct {
	*proc
	addr  string
	pool  *x509.CertPool // trusts the server's certificate only
	probe *probe
}

func startTLSServer(tb testing.TB, dir string) (*tlsServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := startProc(tb, "tls-server", dir, "tls ready", 30*time.Second,
		[]string{roleEnv + "=" + roleTLSServer}, exe)
	if err != nil {
		return nil, err
	}
	s := &tlsServer{proc: p, pool: x509.NewCertPool()}
	var httpAddr string
	for _, f := range strings.Fields(p.ready)[2:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "addr":
			s.addr = v
		case "http":
			httpAddr = v
		case "cert":
			der, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("tls server cert: %w", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("tls server cert: %w", err)
			}
			s.pool.AddCert(cert)
		}
	}
	if s.addr == "" || httpAddr == "" {
		return nil, fmt.Errorf("tls server ready line lacks addresses: %q", p.ready)
	}
	s.probe = newProbe(httpAddr)
	return s, nil
}

// dialIdle opens n TLS connections, at most dialWorkers handshakes at a
// time, and leaves them idle. On error it closes the ones it opened.
func (s *tlsServer) dialIdle(ctx context.Context, n int) ([]*tls.Conn, error) {
	conns := make([]*tls.Conn, n)
	conf := &tls.Config{RootCAs: s.pool, ServerName: tlsServerName, MinVersion: tls.VersionTLS13}
	err := forEach(ctx, n, dialWorkers, func(i int) error {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		// From the address the i-th agent uses, for a like-for-like run.
		d := &tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: sourceIP(i)}}, Config: conf}
		c, err := d.DialContext(dctx, "tcp", s.addr)
		if err != nil {
			return fmt.Errorf("tls conn %d: %w", i, err)
		}
		conns[i] = c.(*tls.Conn)
		return nil
	})
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*tls.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
