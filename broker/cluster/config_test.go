package cluster

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tr := newMemNet().transport()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no name", Config{Transport: tr}, "name"},
		{"bad name", Config{Name: "a b", Transport: tr}, "name"},
		{"long name", Config{Name: strings.Repeat("a", 65), Transport: tr}, "name"},
		{"bad profile", Config{Name: "a", Profile: "fast", Transport: tr}, "unknown profile"},
		{"bad key", Config{Name: "a", SecretKeys: [][]byte{make([]byte, 10)}, Transport: tr}, "secret key 0"},
		{"regions differ", Config{Name: "a", Region: "eu", Meta: Meta{Region: "us"}, Transport: tr}, "differ"},
		{"bind host name", Config{Name: "a", BindAddr: "localhost:7946"}, "must be an IP"},
		{"bind no port", Config{Name: "a", BindAddr: "127.0.0.1"}, "BindAddr"},
		{"advertise port 0", Config{Name: "a", Advertise: "10.0.0.1:0", Transport: tr}, "must not be 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("got %v, want ErrConfig with %q", err, tc.err)
			}
		})
	}
}
