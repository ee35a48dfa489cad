package collect

import (
	"runtime"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		text    string
		want    float64
		wantErr bool
	}{
		{text: "0.18 0.11 0.04 1/83 4165", want: 0.18},
		{text: "12.50 3.00 1.00 9/900 1\n", want: 12.5},
		{text: "", wantErr: true},
		{text: "abc 1 2", wantErr: true},
		{text: "-1 0 0", wantErr: true},
		{text: "NaN 0 0", wantErr: true},
		{text: "Inf 0 0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseLoadavg(tt.text)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%q: got %v, %v; want %v, err %v", tt.text, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLoad1BelowRoot(t *testing.T) {
	root := writeTree(t, map[string]string{"proc/loadavg": "2.00 1.00 0.50 1/10 99\n"})
	got, err := Config{Root: root}.Load1()
	if want := 2.0 / float64(runtime.NumCPU()); err != nil || got != want {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	_, err = Config{Root: testdir.New(t)}.Load1()
	if err == nil || !strings.Contains(err.Error(), "load average") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestLoad1Host(t *testing.T) {
	got, err := Load1()
	if err != nil || got < 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}
