package service

import (
	"bytes"
	"encoding/xml"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// decodePlist reads a property list back: dict as map, array as []any,
// string, bool and int; it also returns the document's directives and
// the top dict's keys in order (its lines indented once).
func decodePlist(t *testing.T, raw []byte) (top map[string]any, keys []string, directives []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(raw))
	var value func(start xml.StartElement) any
	value = func(start xml.StartElement) any {
		switch start.Name.Local {
		case "string", "integer", "key":
			var s string
			if err := d.DecodeElement(&s, &start); err != nil {
				t.Fatal(err)
			}
			if start.Name.Local == "integer" {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			return s
		case "true", "false":
			d.Skip()
			return start.Name.Local == "true"
		}
		var items []any
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				items = append(items, value(tok))
			case xml.EndElement:
				if start.Name.Local == "array" {
					return items
				}
				m := map[string]any{}
				for i := 0; i+1 < len(items); i += 2 {
					m[items[i].(string)] = items[i+1]
				}
				return m
			}
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("plist ended before its dict: %v", err)
		}
		switch tok := tok.(type) {
		case xml.Directive:
			directives = append(directives, string(tok))
		case xml.StartElement:
			if tok.Name.Local == "plist" {
				continue
			}
			if tok.Name.Local != "dict" {
				t.Fatalf("plist holds a %s, want a dict", tok.Name.Local)
			}
			top = value(tok).(map[string]any)
			for _, line := range strings.Split(string(raw), "\n") {
				if k, ok := strings.CutPrefix(line, "\t<key>"); ok {
					keys = append(keys, strings.TrimSuffix(k, "</key>"))
				}
			}
			return top, keys, directives
		}
	}
}

// TestPlist: the generated plist parses back to the keys launchd needs,
// with paths holding blanks and XML's special characters intact.
func TestPlist(t *testing.T) {
	p, err := NewPlan(Spec{OS: "darwin", StateDir: "/Library/Application Support/readymesh/R&D <lab>", Source: "/tmp/sessiond",
		RunArgs: []string{"--interval=15m0s"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := Plist(p)
	top, keys, directives := decodePlist(t, raw)
	if !bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) ||
		len(directives) != 1 || !strings.HasPrefix(directives[0], `DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`) {
		t.Errorf("plist header: directives %q in\n%s", directives, raw)
	}
	want := map[string]any{
		"Label": "io.readymesh.sessiond",
		"ProgramArguments": []any{"/Library/Application Support/readymesh/bin/sessiond", "run", "--state",
			"/Library/Application Support/readymesh/R&D <lab>", "--interval=15m0s"},
		"RunAtLoad":         true,
		"KeepAlive":         map[string]any{"SuccessfulExit": false},
		"StandardOutPath":   "/Library/Logs/readymesh/sessiond.log",
		"StandardErrorPath": "/Library/Logs/readymesh/sessiond.log",
	}
	if !reflect.DeepEqual(top, want) {
		t.Errorf("plist reads back as\n%#v\nwant\n%#v", top, want)
	}
	if want := []string{"Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "StandardOutPath", "StandardErrorPath"}; !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}
}
