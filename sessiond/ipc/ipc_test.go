package ipc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/readymesh/readymesh/integration/testdir"
)

// serveEcho accepts connections on ln and answers each line with
// "echo " and the line, until ln is closed; the returned channel yields
// Accept's final error.
func serveEcho(ln net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					c.Write([]byte("echo " + line))
				}
			}()
		}
	}()
	return done
}

// ask dials dir, sends line and returns the reply.
func ask(t *testing.T, dir, line string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, dir)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestRoundTrip: a client reaches the agent listening on its state
// directory, several times in a row and at once, and not the agent of
// another directory; Close ends Accept with net.ErrClosed.
func TestRoundTrip(t *testing.T) {
	dirA, dirB := testdir.New(t), testdir.New(t)
	lnA, err := Listen(dirA)
	if err != nil {
		t.Fatal(err)
	}
	doneA := serveEcho(lnA)
	if _, err := ask(t, dirB, "hello"); err == nil {
		t.Fatalf("a dial to %s, where nothing listens, succeeded", dirB)
	}
	for i := range 3 {
		if got, err := ask(t, dirA, "hello"); err != nil || got != "echo hello\n" {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := ask(t, dirA, "at once")
			if err == nil && got != "echo at once\n" {
				err = errors.New("reply " + got)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent round trip: %v", err)
		}
	}
	if err := lnA.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-doneA:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits 5 s after Close")
	}
	if _, err := ask(t, dirA, "hello"); err == nil {
		t.Error("a dial after Close succeeded")
	}
}

// TestDeadline: a client that connects and sends nothing is cut off by
// the server's deadline instead of holding its goroutine.
func TestDeadline(t *testing.T) {
	dir := testdir.New(t)
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			read <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		read <- err
	}()
	c, err := Dial(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("server read from a silent client: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's read deadline did not fire in 5 s")
	}
}
