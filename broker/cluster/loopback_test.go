package cluster

import (
	"bytes"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// These tests run memberlist's real NetTransport on 127.0.0.1 with
// kernel-picked ports and the local profile.

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func withKeys(keys ...[]byte) func(*Config) {
	return func(c *Config) { c.SecretKeys = keys }
}

// TestLoopbackJoin: brokers on real sockets with port 0 report the
// kernel's port and join over UDP and TCP with encrypted gossip.
func TestLoopbackJoin(t *testing.T) {
	l := newLoopbackLab(t, ProfileLocal)
	cs := l.cluster(3, withKeys(key(1)))
	for _, c := range cs {
		host, port, err := net.SplitHostPort(c.LocalAddr())
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Errorf("LocalAddr %q", c.LocalAddr())
		}
	}
	since := time.Now()
	cs[0].SetOnline("m1", since)
	waitFor(t, 5*time.Second, "m1 everywhere", everywhere(cs, func(c *Cluster) bool { return held(c, "m1", "b0", since) }))
}

// TestBindAddr: New binds BindAddr itself when no Transport is given.
func TestBindAddr(t *testing.T) {
	c, err := New(Config{Name: "solo", BindAddr: "127.0.0.1:0", Profile: ProfileLocal})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.HasPrefix(c.LocalAddr(), "127.0.0.1:") || strings.HasSuffix(c.LocalAddr(), ":0") {
		t.Errorf("LocalAddr %q", c.LocalAddr())
	}
	if _, err := New(Config{Name: "solo2", BindAddr: c.LocalAddr(), Profile: ProfileLocal}); err == nil {
		t.Error("second bind to a used port succeeded")
	}
}

// TestWrongKey: a broker with another gossip key cannot join, and both
// sides log why in words an operator can act on.
func TestWrongKey(t *testing.T) {
	l := newLoopbackLab(t, ProfileLocal)
	a := l.node("a", nil, withKeys(key(1)))
	b := l.node("b", []string{a.LocalAddr()}, withKeys(key(2)))
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-b.Joined():
		t.Fatal("joined with the wrong key")
	default:
	}
	if n := len(a.Members()); n != 1 {
		t.Errorf("a has %d members", n)
	}
	if len(l.logs.grep("a WARN gossip from 127.0.0.1:")) == 0 || len(l.logs.grep("could not be decrypted: wrong --gossip-key-file?")) == 0 {
		t.Errorf("receiving side did not say why; logs:\n%s", strings.Join(l.logs.grep(""), "\n"))
	}
	if len(l.logs.grep("b WARN join failed: peer's gossip could not be decrypted: wrong --gossip-key-file?")) == 0 {
		t.Errorf("joining side did not say why; logs:\n%s", strings.Join(l.logs.grep(""), "\n"))
	}
	// The warning is rate-limited per host, not repeated per attempt.
	if n := len(l.logs.grep("a WARN gossip from")); n != 1 {
		t.Errorf("%d warnings on the receiving side", n)
	}
	// No key at all is refused the same way.
	c := l.node("c", []string{a.LocalAddr()})
	time.Sleep(time.Second)
	select {
	case <-c.Joined():
		t.Fatal("joined without a key")
	default:
	}
}

// TestKeyRotation: a broker that has the new key as primary and the old
// as secondary joins one that has them the other way round.
func TestKeyRotation(t *testing.T) {
	l := newLoopbackLab(t, ProfileLocal)
	a := l.node("a", nil, withKeys(key(1), key(2)))
	b := l.node("b", []string{a.LocalAddr()}, withKeys(key(2), key(1)))
	waitFor(t, 5*time.Second, "joined", func() bool { return countState(a, StateAlive) == 2 && countState(b, StateAlive) == 2 })
}

// TestNoGoroutineLeak: once every broker is closed, the goroutine count
// settles back to where it was. memberlist's goroutines exit shortly after
// its Shutdown returns (it does not wait for them), hence the polling.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Run("cluster", func(t *testing.T) {
		l := newLoopbackLab(t, ProfileLocal)
		cs := l.cluster(3, withKeys(key(1)))
		rec := newRecorder()
		cs[1].OnPresence(rec.record)
		cs[1].OnMessage("t", func(string, []byte) {})
		cs[0].SetOnline("m1", time.Now())
		cs[0].Broadcast("t", []byte("x"))
		waitFor(t, 5*time.Second, "presence reported", func() bool { return len(rec.get("m1")) == 1 })
		kill(cs[2])
		for _, c := range cs {
			c.Close()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > base && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > base {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("%d goroutines 10 s after Close, %d before:\n%s", n, base, b.String())
	}
}
