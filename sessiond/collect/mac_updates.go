package collect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// macSoftwareUpdatePath is softwareupdate, which asks Apple's catalog
// which macOS updates, security supplements and Apple applications (Safari,
// the command line tools) the machine is missing.
const macSoftwareUpdatePath = "/usr/sbin/softwareupdate"

// Bounds on softwareupdate's answer. A real list has a handful of entries
// of two lines each.
const (
	macSoftwareUpdateMax = 1 << 20 // bytes of stdout
	macUpdatesMax        = 1000    // entries; more is refused
)

// The lines softwareupdate prints around the list, on stdout or stderr
// depending on the release.
const (
	suHeaderTool  = "Software Update Tool"
	suHeaderFind  = "Finding available software"
	suHeaderFound = "Software Update found the following new or updated software:"
	suNone        = "No new software available."
)

// macUpdate is one entry of softwareupdate --list.
type macUpdate struct {
	Label       string // what softwareupdate --install takes
	Title       string
	Version     string
	Recommended bool
	Action      string // "restart", "shut down", or "" when none is needed
}

// collectMacUpdates fills s.PendingUpdates from softwareupdate --list,
// bounded in time by Config.AptTimeout. softwareupdate prints its banner
// and "No new software available." on stderr and exits 0; only an output
// that says either "none" or lists updates is an answer. Anything else
// (a failure, a timeout, an output it cannot read) is an error and leaves
// PendingUpdates unset: an unknown count must never read as zero.
func (m macMachine) collectMacUpdates(ctx context.Context, s *wire.Snapshot) error {
	return m.macTimeout(ctx, "pending updates", func(ctx context.Context) error {
		path, err := m.macTool(macSoftwareUpdatePath)
		if err != nil {
			return err
		}
		out, errOut, err := m.macOutput(ctx, macSoftwareUpdateMax, path, "--list")
		if err != nil {
			return err
		}
		ups, skips, err := parseSoftwareUpdate(out, errOut)
		if skips.n > 0 {
			m.log.Debug("softwareupdate lines skipped", "skips", skips.String())
		}
		if err != nil {
			return fmt.Errorf("softwareupdate: %w", err)
		}
		s.PendingUpdates = macPending(ups)
		m.log.Debug("collected pending updates", "count", len(ups))
		return nil
	})
}

// macPending turns softwareupdate's entries into pending updates. ID is
// the label, which names the update uniquely and is what an install takes.
func macPending(ups []macUpdate) []wire.PendingUpdate {
	out := make([]wire.PendingUpdate, 0, len(ups))
	for _, u := range ups {
		out = append(out, wire.PendingUpdate{
			ID:       u.Label,
			Title:    u.Title,
			Version:  u.Version,
			Source:   "softwareupdate",
			Security: macSecurity(u),
		})
	}
	return out
}

// macSecurity decides whether an update is a security update. Apple rates
// none of them, so this goes by what Apple calls them: Background Security
// Improvements (macOS 26), Rapid Security Responses (macOS 13) and the
// "Security Update YYYY-NNN" of older releases all say "Security" in their
// label or title, and the supplements also carry a letter in their version
// ("26.3.1 (a)"), which nothing else does. A point release such as
// "macOS Sonoma 14.7.4" is not marked, though it usually fixes security
// bugs too: it is not labelled as one, and marking every OS update would
// make the flag mean nothing.
func macSecurity(u macUpdate) bool {
	text := strings.ToLower(u.Label + " " + u.Title)
	return strings.Contains(text, "security") || macSupplement(u.Version)
}

// macSupplement reports whether a version ends in a supplement letter:
// "13.4.1 (c)".
func macSupplement(version string) bool {
	n := len(version)
	return n >= 4 && version[n-4:n-2] == " (" && version[n-2] >= 'a' && version[n-2] <= 'z' && version[n-1] == ')'
}

// parseSoftwareUpdate parses softwareupdate --list. Since macOS 10.15 an
// entry is two lines after the list's heading:
//
//	Software Update found the following new or updated software:
//	* Label: macOS Sonoma 14.2.1-23C71
//		Title: macOS Sonoma 14.2.1, Version: 14.2.1, Size: 1234567KiB, Recommended: YES, Action: restart,
//
// and up to 10.14 it was
//
//	Software Update found the following new or updated software:
//	   * macOS 10.14.1 Update
//		macOS 10.14.1 Update (10.14.1), 199140K [recommended] [restart]
//
// Entries are read from stdout; the heading and the "none" message are
// looked for in both streams. Lines it does not understand (softwareupdate
// also logs framework noise there) are skipped with the reason in skips.
// It fails when the output neither lists updates nor says there are none,
// when it announces a list it cannot read, and past macUpdatesMax entries.
func parseSoftwareUpdate(stdout, stderr string) ([]macUpdate, macSkips, error) {
	var p suParser
	for line := range strings.Lines(stderr) {
		p.marker(strings.TrimSpace(line))
	}
	for line := range strings.Lines(stdout) {
		p.line(line)
	}
	return p.result(stderr)
}

// suParser holds parseSoftwareUpdate's state between lines.
type suParser struct {
	ups    []macUpdate
	skips  macSkips
	n      int  // lines read
	listed bool // the "found the following" line was seen
	none   bool // "No new software available." was seen
	open   bool // the last entry has not had its details line yet
	old    bool // the last entry is in the 10.14 format
}

// marker notes the lines that frame the list, reporting whether t is one.
func (p *suParser) marker(t string) bool {
	switch {
	case t == "" || t == suHeaderTool || t == suHeaderFind:
	case strings.HasPrefix(t, suHeaderFound):
		p.listed = true
	case t == suNone:
		p.none = true
	default:
		return false
	}
	return true
}

func (p *suParser) line(line string) {
	p.n++
	t := strings.TrimSpace(line)
	if p.marker(t) {
		return
	}
	if len(p.ups) > macUpdatesMax {
		return
	}
	if label, ok := suLabel(t); ok {
		p.add(macUpdate{Label: label, Recommended: t[0] == '*'}, false)
		return
	}
	if p.open && !p.old && strings.HasPrefix(t, "Title: ") {
		suDetails(&p.ups[len(p.ups)-1], t)
		p.open = false
		return
	}
	if p.listed && len(t) > 2 && (t[0] == '*' || t[0] == '-') && t[1] == ' ' {
		p.add(macUpdate{Label: strings.TrimSpace(t[2:]), Recommended: t[0] == '*'}, true)
		return
	}
	if p.open && p.old {
		suOldDetails(&p.ups[len(p.ups)-1], t)
		p.open = false
		return
	}
	p.skips.add("line %d: not understood: %q", p.n, macClip(t))
}

// add starts a new entry, which expects its details on the next line.
func (p *suParser) add(u macUpdate, old bool) {
	if u.Label == "" || len(u.Label) > macFieldMax || hasControl(u.Label) {
		p.skips.add("line %d: bad label %q", p.n, macClip(u.Label))
		p.open = false
		return
	}
	p.ups = append(p.ups, u)
	p.open, p.old = true, old
}

func (p *suParser) result(stderr string) ([]macUpdate, macSkips, error) {
	switch {
	case len(p.ups) > macUpdatesMax:
		return nil, p.skips, fmt.Errorf("more than %d updates listed", macUpdatesMax)
	case len(p.ups) > 0:
		return p.ups, p.skips, nil
	case p.listed:
		return nil, p.skips, fmt.Errorf("announced updates but none could be read (%s)", p.skips)
	case p.none:
		return []macUpdate{}, p.skips, nil
	}
	msg := fmt.Sprintf("neither a list of updates nor %q", suNone)
	if e := strings.TrimSpace(stderr); e != "" {
		msg += fmt.Sprintf("; stderr: %q", macClip(e))
	}
	return nil, p.skips, errors.New(msg)
}

// suLabel reads "* Label: X" (recommended) or "- Label: X".
func suLabel(t string) (string, bool) {
	if len(t) < 2 || (t[0] != '*' && t[0] != '-') {
		return "", false
	}
	label, ok := strings.CutPrefix(strings.TrimSpace(t[1:]), "Label:")
	return strings.TrimSpace(label), ok
}

// suDetails reads "Title: T, Version: V, Size: S, Recommended: YES,
// Action: restart," into u. Recommended, when present, overrides what
// the label line's "*" or "-" said. A comma inside a value (a title with a comma)
// stays in it: a new field starts only where a capitalised key and ": "
// follow ", ". Fields it does not know are ignored; values that are too
// long are dropped.
func suDetails(u *macUpdate, t string) {
	t = strings.TrimRight(strings.TrimSpace(t), ",")
	var key string
	parts := map[string][]string{} // joined once at the end: appending to a string each time would be quadratic
	for tok := range strings.SplitSeq(t, ", ") {
		if k, v, ok := strings.Cut(tok, ": "); ok && suKey(k) {
			key = k
			parts[key] = []string{v}
			continue
		}
		if key != "" {
			parts[key] = append(parts[key], tok)
		}
	}
	vals := make(map[string]string, len(parts))
	for k, p := range parts {
		vals[k] = strings.Join(p, ", ")
	}
	u.Title = suValue(vals["Title"])
	u.Version = suValue(vals["Version"])
	if r, ok := vals["Recommended"]; ok {
		u.Recommended = strings.EqualFold(r, "YES")
	}
	u.Action = strings.ToLower(suValue(vals["Action"]))
}

// suOldDetails reads the 10.14 details line, "Title (Version), Size
// [recommended] [restart]", into u.
func suOldDetails(u *macUpdate, t string) {
	main, flags, _ := strings.Cut(t, " [")
	flags = "[" + flags
	u.Recommended = strings.Contains(flags, "[recommended]")
	switch {
	case strings.Contains(flags, "[restart]"):
		u.Action = "restart"
	case strings.Contains(flags, "[shut down]"):
		u.Action = "shut down"
	}
	head := main
	if i := strings.LastIndex(main, "), "); i >= 0 {
		head = main[:i]
	}
	if i := strings.LastIndex(head, " ("); i >= 0 && head != main {
		u.Title, u.Version = suValue(strings.TrimRight(head[:i], ", ")), suValue(head[i+2:])
		return
	}
	u.Title = suValue(strings.TrimRight(main, ", "))
}

// suKey reports whether k looks like one of softwareupdate's field names:
// one or two capitalised words.
func suKey(k string) bool {
	if k == "" || len(k) > 20 || k[0] < 'A' || k[0] > 'Z' {
		return false
	}
	for _, c := range []byte(k) {
		if !(c == ' ' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return strings.Count(k, " ") <= 1
}

// suValue trims a value and drops it when it is too long or holds control
// characters.
func suValue(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > macFieldMax || hasControl(v) {
		return ""
	}
	return v
}
