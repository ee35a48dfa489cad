package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// These fuzz targets cover the agent's side: every message a broker sends
// an agent (grants inside offers and jobs, consent policies, queued jobs,
// relay replies) and everything a technician sends it over a session
// channel (the channel's header and its frames). The replies an agent
// reads on the presence and check-in streams are in FuzzDecodeOther and
// FuzzDecodeBrokerList, the offer in FuzzDecodeSignalling.

// fuzzPeerID returns a real peer ID derived from seed, so that seeds pass
// Grant.Validate's peer ID checks.
func fuzzPeerID(f *testing.F, seed byte) string {
	f.Helper()
	_, pub, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		f.Fatal(err)
	}
	return id.String()
}

// seedGrant is a grant as a broker issues it.
func seedGrant(f *testing.F) Grant {
	return Grant{Version: 1, Session: "0123456789abcdef0123456789abcdef", Technician: fuzzPeerID(f, 1),
		Machine: fuzzPeerID(f, 2), Mode: ModeInteractive, Issuer: fuzzPeerID(f, 3), IssuedAt: seedTime,
		Expires: seedTime.Add(60e9), Nonce: "00112233445566778899aabbccddeeff", TechnicianName: "tina"}
}

// FuzzDecodeGrant decodes a grant's body, as the agent does before it
// checks the signature (mesh.VerifyGrant). What decodes must hold every
// bound Validate states, since the agent uses the session ID in file
// names and its peer IDs as keys.
func FuzzDecodeGrant(f *testing.F) {
	g := seedGrant(f)
	f.Add(mustJSON(f, &g))
	web := g
	web.Mode, web.Fingerprints = ModeReadOnly, []string{"sha-256 " + strings.Repeat("AB:", 31) + "AB"}
	f.Add(mustJSON(f, &web))
	bad := g
	bad.Session = "../../../../tmp/x/../../etc/pass"
	f.Add(mustJSON(f, &bad))
	f.Add([]byte(`{"v":1,"session":"0123456789abcdef0123456789abcdeg"}`))
	f.Add([]byte(`{"v":1.0,"mode":"elevated","fingerprints":["",""],"expires":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok := roundTrip[Grant](t, body)
		if !ok {
			return
		}
		if _, err := hex.DecodeString(v.Session); v.Version != 1 || len(v.Session) != 32 || err != nil {
			t.Fatalf("Decode accepted a grant with version %d, session %q", v.Version, v.Session)
		}
		for _, id := range []string{v.Technician, v.Machine, v.Issuer} {
			if _, err := peer.Decode(id); err != nil {
				t.Fatalf("Decode accepted a grant with peer ID %q", id)
			}
		}
		if modeOK := v.Mode == ModeReadOnly || v.Mode == ModeInteractive || v.Mode == ModeElevated; !modeOK ||
			v.Nonce == "" || v.Expires.IsZero() || len(v.Fingerprints) > 4 {
			t.Fatalf("Decode accepted an invalid grant: %+v", v)
		}
		for _, fp := range v.Fingerprints {
			if fp == "" || len(fp) > 200 {
				t.Fatalf("Decode accepted fingerprint %q", fp)
			}
		}
	})
}

// FuzzDecodePolicy decodes a consent policy as the agent reads it on
// ProtoPolicy.
func FuzzDecodePolicy(f *testing.F) {
	for _, p := range []ConsentPolicyArgs{
		{Machine: "acme/desk-01", Policy: ConsentWindow, WindowSec: 3600, By: "tina"},
		{Policy: ConsentNever},
		{Policy: ConsentSession, WindowSec: 31 * 24 * 3600},
	} {
		f.Add(mustJSON(f, &p))
	}
	f.Add([]byte(`{"policy":"window","window_s":-1}`))
	f.Add([]byte(`{"policy":"window","window_s":2678401}`))
	f.Add([]byte(`{"policy":"always"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok := roundTrip[ConsentPolicyArgs](t, body)
		if !ok {
			return
		}
		if p := v.Policy; p != ConsentNever && p != ConsentWindow && p != ConsentSession {
			t.Fatalf("Decode accepted policy %q", p)
		}
		if v.WindowSec < 0 || v.WindowSec > 31*24*3600 {
			t.Fatalf("Decode accepted a window of %d s", v.WindowSec)
		}
	})
}

// FuzzDecodeJobRequest decodes a queued job as the agent reads it on
// ProtoJob, and the reply the broker reads back.
func FuzzDecodeJobRequest(f *testing.F) {
	g := seedGrant(f)
	sg := SignedGrant{Body: mustJSON(f, &g), Sig: bytes.Repeat([]byte{7}, 64)}
	for _, r := range []JobRequest{
		{Grant: sg, Job: "fedcba9876543210fedcba9876543210", Script: "apt-get -y upgrade openssl\n", RequiresConsent: true, Expires: seedTime},
		{Grant: sg, Job: "fedcba9876543210fedcba9876543210", Script: "true", QueryOnly: true},
		{Job: "fedcba9876543210fedcba9876543210", Script: strings.Repeat("x", 64<<10)},
	} {
		f.Add(mustJSON(f, &r))
	}
	f.Add([]byte(`{"job":"fedcba9876543210fedcba9876543210","update":{"version":"0.3.0","manifest":"e30=","signature":"x","health_window_s":900}}`))
	f.Add(mustJSON(f, &JobReply{ExitCode: 1, Output: "E: Could not get lock\n", Replayed: true}))
	f.Add(mustJSON(f, &JobReply{Error: &Error{Code: CodeGone, Message: "the job expired"}}))
	f.Add([]byte(`{"job":"fedcba9876543210fedcba987654321","script":"x"}`))
	f.Add([]byte(`{"job":"fedcba9876543210fedcba9876543210","script":"","expires":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if v, ok := roundTrip[JobRequest](t, body); ok {
			if v.Update == nil && (len(v.Job) != 32 || v.Script == "" || len(v.Script) > 64<<10) {
				t.Fatalf("Decode accepted an invalid job request: job %q, %d-byte script", v.Job, len(v.Script))
			}
			if v.Update != nil && (len(v.Job) != 32 || v.Script != "" || v.Update.HealthWindowSec < 10) {
				t.Fatalf("Decode accepted an invalid update job: job %q, %d-byte script, window %d", v.Job, len(v.Script), v.Update.HealthWindowSec)
			}
		}
		roundTrip[JobReply](t, body)
	})
}

// FuzzDecodeRelay decodes the relay's opening: the hello a broker reads
// and the ready (or refusal) the agent and technician read.
func FuzzDecodeRelay(f *testing.F) {
	f.Add(mustJSON(f, &RelayHello{Session: "0123456789abcdef0123456789abcdef"}))
	f.Add(mustJSON(f, &RelayReady{}))
	f.Add(mustJSON(f, &RelayReady{Error: &Error{Code: CodeUnavailable, Message: "the other side never came"}}))
	f.Add([]byte(`{"error":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if v, ok := roundTrip[RelayHello](t, body); ok && len(v.Session) != 32 {
			t.Fatalf("Decode accepted relay session %q", v.Session)
		}
		roundTrip[RelayReady](t, body)
	})
}

// FuzzDecodeChannelHeader decodes a session channel's first frame as the
// agent reads it (exec, terminal and file requests) and the file info the
// technician reads back.
func FuzzDecodeChannelHeader(f *testing.F) {
	for _, v := range []any{
		&ExecRequest{Argv: []string{"systemctl", "restart", "nginx"}},
		&ExecRequest{Argv: []string{"sh", "-c", "cat > /tmp/x"}, Stdin: true},
		&TerminalRequest{Rows: 24, Cols: 80, Term: "xterm-256color", AllowObservers: true},
		&TerminalRequest{Observe: "0123456789abcdef0123456789abcdef"},
		&FileRequest{Op: "get", Path: "/var/log/syslog", Offset: 4096},
		&FileRequest{Op: "put", Path: "/etc/nginx/nginx.conf", Size: 1 << 20, Mode: 0o640},
		&FileInfo{Size: 1 << 20, SHA256: strings.Repeat("ab", 32), Have: 4096},
	} {
		f.Add(mustJSON(f, v))
	}
	f.Add([]byte(`{"argv":[""]}`))
	f.Add([]byte(`{"rows":1001,"cols":80}`))
	f.Add([]byte(`{"op":"put","path":"relative","size":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if v, ok := roundTrip[ExecRequest](t, body); ok && (len(v.Argv) == 0 || v.Argv[0] == "" || len(v.Argv) > 4096) {
			t.Fatalf("Decode accepted exec argv %q", v.Argv)
		}
		if v, ok := roundTrip[TerminalRequest](t, body); ok &&
			(v.Rows > 1000 || v.Cols > 1000 || len(v.Term) > 64 || (v.Observe != "" && len(v.Observe) != 32)) {
			t.Fatalf("Decode accepted an invalid terminal request: %+v", v)
		}
		if v, ok := roundTrip[FileRequest](t, body); ok &&
			((v.Op != "get" && v.Op != "put") || !strings.HasPrefix(v.Path, "/") || len(v.Path) > 4096 || v.Offset < 0 || v.Size < 0) {
			t.Fatalf("Decode accepted an invalid file request: %+v", v)
		}
		roundTrip[FileInfo](t, body)
	})
}

// FuzzReadChannelFrames reads a session channel to its end, frame after
// frame, as the agent's terminal and file handlers do. A small oracle
// says what each read must return. Whatever the length fields announce,
// reading must not allocate much beyond the bytes it is given: a
// technician who announces a megabyte and sends five bytes must not make
// the agent hold a megabyte, on each of its channels.
func FuzzReadChannelFrames(f *testing.F) {
	var seed bytes.Buffer
	WriteChannelFrame(&seed, FrameHeader, []byte(`{"op":"put","path":"/tmp/f","size":5}`))
	WriteChannelFrame(&seed, FrameInput, []byte("hello"))
	WriteChannelFrame(&seed, FrameResize, []byte{0, 50, 0, 132})
	WriteChannelFrame(&seed, FrameDone, []byte(strings.Repeat("0", 64)))
	f.Add(seed.Bytes())
	f.Add([]byte{FrameInput, 0, 0x10, 0, 0})      // announces MaxFrame, sends nothing
	f.Add([]byte{FrameInput, 0, 0x10, 0, 1, 'x'}) // one byte over MaxFrame
	f.Add([]byte{FrameInput, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		r := bytes.NewReader(data)
		for off := 0; ; {
			typ, p, err := ReadChannelFrame(r)
			left := data[off:]
			switch {
			case len(left) == 0:
				if err != io.EOF {
					t.Fatalf("at the end: %v, want io.EOF", err)
				}
			case len(left) < 5:
				if err != io.ErrUnexpectedEOF {
					t.Fatalf("cut header at %d: %v, want io.ErrUnexpectedEOF", off, err)
				}
			case binary.BigEndian.Uint32(left[1:]) > MaxFrame, int(binary.BigEndian.Uint32(left[1:])) > len(left)-5:
				if !errors.Is(err, ErrFrame) {
					t.Fatalf("frame at %d over the limit or cut: %v, want ErrFrame", off, err)
				}
			default:
				n := int(binary.BigEndian.Uint32(left[1:]))
				if err != nil || typ != left[0] || !bytes.Equal(p, left[5:5+n]) {
					t.Fatalf("frame at %d: %q, %d bytes, %v; want %q, %d bytes", off, typ, len(p), err, left[0], n)
				}
				off += 5 + n
				continue
			}
			break
		}
		runtime.ReadMemStats(&ms1)
		// Each frame's buffers (growing fourfold: at most about five times
		// the bytes that arrived for it, once past the first 64 KiB),
		// error text, and slack for whatever else the process allocated
		// meanwhile.
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 6*uint64(len(data))+256<<10 {
			t.Fatalf("reading %d bytes of frames allocated %d bytes", len(data), alloc)
		}
	})
}
