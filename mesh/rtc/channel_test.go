package rtc

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestInBandChannels opens named channels from the offerer, as a browser
// does with createDataChannel, and checks that the answerer gets each one
// with its label as a byte stream, that labels outside the accepted set
// are refused, and that each side of the API is used by its own role.
func TestInBandChannels(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := connect(t, ctx, loopbackConfig(t, "offerer"), loopbackConfig(t, "answerer"))

	for _, label := range []string{"terminal", "exec"} {
		st, err := p.off.OpenChannel(ctx, label)
		if err != nil {
			t.Fatalf("open %s: %v", label, err)
		}
		ch, err := p.ans.AcceptChannel(ctx)
		if err != nil {
			t.Fatalf("accept %s: %v", label, err)
		}
		if ch.Label != label {
			t.Fatalf("accepted %q, want %q", ch.Label, label)
		}
		// 200 KiB crosses several messages each way: the stream hides
		// message boundaries.
		msg := randomBytes(t, 200<<10)
		go func() {
			io.Copy(ch.Stream, io.LimitReader(ch.Stream, int64(len(msg))))
		}()
		if _, err := st.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(st, got); err != nil {
			t.Fatalf("read back on %s: %v", label, err)
		}
		if string(got) != string(msg) {
			t.Fatalf("%s: bytes changed on the way", label)
		}
		st.Close()
	}

	for _, bad := range []string{"", "echo", "bytes", "Terminal", strings.Repeat("a", 33)} {
		if _, err := p.off.OpenChannel(ctx, bad); err == nil {
			t.Errorf("OpenChannel(%q) succeeded", bad)
		}
	}
	// A channel that may drop or reorder messages is no byte stream: the
	// answerer closes it instead of handing it out.
	unordered := false
	if _, err := p.off.p.pc.CreateDataChannel("terminal", &webrtc.DataChannelInit{Ordered: &unordered}); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if c, err := p.ans.AcceptChannel(actx); err == nil {
		t.Errorf("the answerer accepted an unordered channel %q", c.Label)
	}
	acancel()

	if _, err := p.ans.OpenChannel(ctx, "terminal"); err == nil {
		t.Error("the answerer opened a channel")
	}
	if _, err := p.off.AcceptChannel(ctx); err == nil {
		t.Error("the offerer accepted a channel")
	}
	// Closing the session ends a waiting AcceptChannel.
	errc := make(chan error, 1)
	go func() {
		_, err := p.ans.AcceptChannel(context.Background())
		errc <- err
	}()
	p.off.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("AcceptChannel returned a channel after the session closed")
		}
	case <-ctx.Done():
		t.Fatal("AcceptChannel still waiting after the session closed")
	}
}
