package systemd

import (
	"bytes"
	"strings"
)

// Dir is where units an administrator installs live: they take
// precedence over the units packages ship in /lib/systemd/system.
const Dir = "/etc/systemd/system"

// Unit is a unit file: its name and its sections in order.
type Unit struct {
	// Name is the unit's file name, such as readymesh-broker.service.
	Name string
	// Header is a comment written at the top: who wrote the unit and how
	// to remove it. Empty writes none.
	Header   string
	Sections []Section
}

// Section is one [Name] section of a unit.
type Section struct {
	Name string // Unit, Service or Install
	// Comment is written right below the section's header: what the
	// section leaves out, and why. Empty writes none.
	Comment    string
	Directives []Directive
}

// Directive is one Key=Value line. Why, when set, is written above it as
// a comment.
type Directive struct {
	Key, Value, Why string
}

// Path is where the unit is installed: Dir/Name.
func (u *Unit) Path() string { return Dir + "/" + u.Name }

// Bytes renders the unit file.
func (u *Unit) Bytes() []byte {
	var b bytes.Buffer
	comment(&b, u.Header)
	for i, s := range u.Sections {
		if i > 0 || u.Header != "" {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s.Name + "]\n")
		comment(&b, s.Comment)
		for _, d := range s.Directives {
			comment(&b, d.Why)
			b.WriteString(d.Key + "=" + d.Value + "\n")
		}
	}
	return b.Bytes()
}

// Values returns the values key has in section, in order: a key may be
// given more than once.
func (u *Unit) Values(section, key string) []string {
	var vs []string
	for _, s := range u.Sections {
		if s.Name != section {
			continue
		}
		for _, d := range s.Directives {
			if d.Key == key {
				vs = append(vs, d.Value)
			}
		}
	}
	return vs
}

// commentWidth is where comment lines wrap.
const commentWidth = 76

// comment writes text as comment lines, wrapped at commentWidth; a blank
// line in text starts a new paragraph.
func comment(b *bytes.Buffer, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString("#\n")
		}
		line := "#"
		for _, w := range strings.Fields(para) {
			if len(line)+1+len(w) > commentWidth && line != "#" {
				b.WriteString(line + "\n")
				line = "#"
			}
			line += " " + w
		}
		if line != "#" {
			b.WriteString(line + "\n")
		}
	}
}
