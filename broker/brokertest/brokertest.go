// Package brokertest runs a real broker in process for the tests of the
// packages that talk to one (meshctl, the technician client, the broker's
// own commands), the way net/http/httptest runs a server: on loopback, on
// ports the kernel picks, stopped when the test ends.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker"
	"github.com/readymesh/readymesh/peer/wire"
)

// Run runs a broker with broker.TestConfig(dir) until the test ends and
// returns the path of its admin credential once it serves. A broker that
// fails to start or stop fails the test.
func Run(t testing.TB, dir string) string {
	t.Helper()
	b, err := broker.New(broker.TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- b.Run(ctx, func(_ wire.BrokerInfo, cred string) { ready <- cred }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("broker: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("broker did not stop within 10s")
		}
	})
	select {
	case cred := <-ready:
		return cred
	case err := <-done:
		t.Fatalf("broker: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("broker not ready within 10s")
	}
	return ""
}
