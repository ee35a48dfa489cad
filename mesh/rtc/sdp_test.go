package rtc

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func TestFingerprints(t *testing.T) {
	offer := mustOffer(t)
	fps, err := Fingerprints(offer)
	if err != nil {
		t.Fatalf("Fingerprints: %v", err)
	}
	want := regexp.MustCompile(`(?m)^a=fingerprint:(.+?)\r?$`).FindAllStringSubmatch(offer, -1)
	if len(want) == 0 {
		t.Fatal("offer has no a=fingerprint line")
	}
	if !slices.Contains(fps, strings.TrimSpace(want[0][1])) || !strings.HasPrefix(fps[0], "sha-256 ") {
		t.Fatalf("Fingerprints = %q, want the offer's %q", fps, want[0][1])
	}
}

func TestRefusedSDP(t *testing.T) {
	offer := mustOffer(t)
	noFingerprint := regexp.MustCompile(`(?m)^a=fingerprint:.*\r?\n`).ReplaceAllString(offer, "")
	badFingerprint := regexp.MustCompile(`(?m)^(a=fingerprint:sha-256 )..`).ReplaceAllString(offer, "${1}ZZ")
	md5Fingerprint := regexp.MustCompile(`(?m)^a=fingerprint:sha-256 [0-9A-F:]+`).
		ReplaceAllString(offer, "a=fingerprint:md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF")
	noData := regexp.MustCompile(`(?s)m=application.*`).ReplaceAllString(offer, "")
	if noFingerprint == offer || badFingerprint == offer || md5Fingerprint == offer || noData == offer {
		t.Fatal("test offer did not have the expected lines")
	}
	for _, tc := range []struct{ name, sdp string }{
		{"empty", ""},
		{"not SDP", "hello, agent"},
		{"no fingerprint", noFingerprint},
		{"malformed fingerprint", badFingerprint},
		{"md5 fingerprint", md5Fingerprint},
		{"no data channel section", noData},
		{"too large", offer + strings.Repeat("a=x-pad:"+strings.Repeat("p", 100)+"\r\n", MaxSDPSize/100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, err := Answer(context.Background(), loopbackConfig(t, "answerer"), tc.sdp)
			if err == nil {
				_ = a.Close()
				t.Fatal("Answer accepted it")
			}
			if !errors.Is(err, ErrSDP) {
				t.Fatalf("Answer: %v, want ErrSDP", err)
			}
			t.Log(err)
		})
	}
}

// TestAcceptRefusesBadAnswer checks a bad answer leaves the Offerer
// usable for the real one.
func TestAcceptRefusesBadAnswer(t *testing.T) {
	checkLeaks(t)
	ctx := context.Background()
	o, offer, err := Offer(ctx, loopbackConfig(t, "offerer"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	a, answer, err := Answer(ctx, loopbackConfig(t, "answerer"), offer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	bad := regexp.MustCompile(`(?m)^a=fingerprint:.*\r?\n`).ReplaceAllString(answer, "")
	if _, err := o.Accept(ctx, bad); !errors.Is(err, ErrSDP) {
		t.Fatalf("Accept(answer without fingerprint): %v, want ErrSDP", err)
	}
	s, err := o.Accept(ctx, answer)
	if err != nil {
		t.Fatalf("Accept(real answer): %v", err)
	}
	checkEcho(t, s)
}

// FuzzFingerprints feeds Fingerprints arbitrary text: it must not panic,
// and what it accepts must survive an SDP encode/decode round trip with
// the same fingerprints.
func FuzzFingerprints(f *testing.F) {
	f.Add(mustOffer(f))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33\r\n")
	f.Add("v=0\r\n")
	f.Fuzz(func(t *testing.T, desc string) {
		fps, err := Fingerprints(desc)
		if err != nil {
			if !errors.Is(err, ErrSDP) {
				t.Fatalf("error %v is not ErrSDP", err)
			}
			return
		}
		var parsed sdp.SessionDescription
		if err := parsed.UnmarshalString(desc); err != nil {
			t.Fatalf("Fingerprints accepted what sdp cannot parse: %v", err)
		}
		raw, err := parsed.Marshal()
		if err != nil {
			return // pion's encoder refuses some things its decoder takes
		}
		again, err := Fingerprints(string(raw))
		if err != nil || !slices.Equal(again, fps) {
			t.Fatalf("round trip changed fingerprints: %q → %q, %v", fps, again, err)
		}
	})
}
