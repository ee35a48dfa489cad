package channel

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/readymesh/readymesh/integration/testdir"
)

func readCast(t *testing.T, path string) (castHeader, [][]any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var hdr castHeader
	var evs [][]any
	for i := 0; sc.Scan(); i++ {
		if i == 0 {
			if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
				t.Fatalf("header: %v", err)
			}
			continue
		}
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		evs = append(evs, ev)
	}
	return hdr, evs
}

func TestTranscriptInputOnlyWhenAllowed(t *testing.T) {
	for _, input := range []bool{false, true} {
		path := filepath.Join(testdir.New(t), "s.cast")
		tr, err := newTranscript(path, 80, 24, "t", map[string]string{"TERM": "xterm"}, input)
		if err != nil {
			t.Fatal(err)
		}
		tr.event("o", []byte("$ "))
		tr.event("i", []byte("secret\r"))
		tr.event("o", []byte("ok\r\n"))
		tr.close()
		hdr, evs := readCast(t, path)
		if hdr.Version != 2 || hdr.Width != 80 || hdr.Height != 24 {
			t.Fatalf("header %+v", hdr)
		}
		kinds := ""
		for _, e := range evs {
			kinds += e[1].(string)
		}
		want := "oo"
		if input {
			want = "oio"
		}
		if kinds != want {
			t.Errorf("input %v: events %q, want %q", input, kinds, want)
		}
	}
}

func TestTranscriptStopsAtItsLimit(t *testing.T) {
	path := filepath.Join(testdir.New(t), "big.cast")
	tr, err := newTranscript(path, 80, 24, "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("x", 64<<10))
	for range MaxTranscript/len(chunk) + 10 {
		tr.event("o", chunk)
	}
	tr.close()
	fi, _ := os.Stat(path)
	if fi.Size() > MaxTranscript+(256<<10) {
		t.Fatalf("transcript grew to %d bytes", fi.Size())
	}
	_, evs := readCast(t, path)
	if last := evs[len(evs)-1][2].(string); !strings.Contains(last, "transcript stopped") {
		t.Fatalf("no stop marker: %q", last)
	}
}

// TestJobOutputIsValidAndBounded: a queued job's output travels in JSON
// between brokers, which check it: it must be valid UTF-8 and within its
// limit even after bad bytes are replaced.
func TestJobOutputIsValidAndBounded(t *testing.T) {
	var c capped
	c.Write([]byte(strings.Repeat("\xe9", MaxJobOutput+100))) // Latin-1 é: invalid UTF-8
	s := c.String()
	if !utf8.ValidString(s) || len(s) > MaxJobOutput {
		t.Fatalf("output of %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
}
