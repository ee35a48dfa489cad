package main

import "testing"

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		name      string
		given     bool
		value     int
		env       string
		want      int
		wantApply bool
		wantErr   bool
	}{
		{"default", false, 0, "", defaultGCPercent, true, false},
		{"GOGC set", false, 0, "200", 0, false, false},
		{"flag wins over GOGC", true, 80, "200", 80, true, false},
		{"flag alone", true, 100, "", 100, true, false},
		{"off", true, -1, "", -1, true, false},
		{"zero", true, 0, "", 0, false, true},
		{"negative", true, -5, "", 0, false, true},
	} {
		got, apply, err := gcPercent(c.given, c.value, c.env)
		if (err != nil) != c.wantErr || got != c.want || apply != c.wantApply {
			t.Errorf("%s: gcPercent(%v, %d, %q) = %d, %v, %v; want %d, %v, error %v",
				c.name, c.given, c.value, c.env, got, apply, err, c.want, c.wantApply, c.wantErr)
		}
	}
}
