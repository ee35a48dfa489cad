package channel

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// MaxTranscript bounds one transcript file, header and end marker
// included; past it recording stops with a marker, and the session goes on.
const MaxTranscript = 16 << 20

// markerRoom is kept free for the end marker.
const markerRoom = 256

// transcript records a terminal as an asciicast v2 file
// (https://docs.asciinema.org/manual/asciicast/v2/): a JSON header line,
// then one [seconds, "o"|"i", text] line per event. The standard asciinema
// player plays it. Input events are kept only when the policy says so.
type transcript struct {
	// Immutable after newTranscript.
	f     *os.File
	start time.Time
	input bool // keep input events

	mu      sync.Mutex    // mu guards all following fields, and writes to f through w
	w       *bufio.Writer // buffers f
	n       int64         // bytes written so far
	stopped bool          // past MaxTranscript: nothing more is written
}

type castHeader struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// newTranscript creates path and writes the header.
func newTranscript(path string, cols, rows int, title string, env map[string]string, input bool) (*transcript, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	t := &transcript{f: f, w: bufio.NewWriterSize(f, 64<<10), start: time.Now(), input: input}
	hdr, _ := json.Marshal(castHeader{Version: 2, Width: cols, Height: rows, Timestamp: t.start.Unix(), Title: title, Env: env})
	t.w.Write(append(hdr, '\n'))
	t.n = int64(len(hdr)) + 1
	return t, nil
}

// event appends one event; kind is "o" (output) or "i" (input).
func (t *transcript) event(kind string, data []byte) {
	if t == nil || (kind == "i" && !t.input) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	line, _ := json.Marshal([]any{time.Since(t.start).Seconds(), kind, string(data)})
	if t.n+int64(len(line))+1+markerRoom > MaxTranscript {
		marker, _ := json.Marshal([]any{time.Since(t.start).Seconds(), "o",
			fmt.Sprintf("\r\n[readymesh: transcript stopped at %d MiB]\r\n", MaxTranscript>>20)})
		t.w.Write(append(marker, '\n'))
		t.stopped = true
		return
	}
	t.n += int64(len(line)) + 1
	t.w.Write(append(line, '\n'))
}

func (t *transcript) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w.Flush()
	t.f.Sync()
	return t.f.Close()
}
