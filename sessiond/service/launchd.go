package service

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// LaunchdJob is how sessiond is registered with launchd: a daemon in the
// system domain, so it runs as root from boot, before anyone logs in.
type LaunchdJob struct {
	Label     string
	PlistPath string // in /Library/LaunchDaemons
}

// darwinPlan keeps the binary beside the state directory, under
// /Library/Application Support, which only administrators can write; not
// in /usr/local, which Homebrew hands to a user on Intel Macs. Its paths
// are slash paths whatever system plans.
func darwinPlan(spec Spec) *Plan {
	const base = "/Library/Application Support/readymesh"
	p := &Plan{OS: "darwin", StateDir: path.Clean(spec.StateDir), Source: spec.Source,
		Exe: base + "/bin/sessiond", LogFile: "/Library/Logs/readymesh/sessiond.log"}
	p.Args = runArgs(p.StateDir, "", spec.RunArgs)
	p.Launchd = &LaunchdJob{Label: LaunchdLabel, PlistPath: "/Library/LaunchDaemons/" + LaunchdLabel + ".plist"}
	return p
}

func (j *LaunchdJob) print(pw *planWriter, p *Plan) {
	pw.line("daemon", j.PlistPath)
	pw.line("then", "enrol unless the state directory is enrolled, copy the binary, write the plist, launchctl bootstrap system "+j.PlistPath)
	if pw.err == nil {
		_, pw.err = fmt.Fprintf(pw.w, "\n%s", Plist(p))
	}
}

// Plist is the launchd property list of p's daemon.
//
// KeepAlive is {SuccessfulExit: false}: launchd restarts the agent when
// it crashes or exits with an error, as the Windows recovery actions do,
// but not after a clean exit, which only a SIGTERM from an administrator
// (or launchd itself) causes; so stopping it by hand works as stopping a
// Windows service does, and `launchctl kickstart system/LABEL` starts it
// again. launchd waits its ThrottleInterval (10 s) between restarts.
// Output goes to LogFile, which install creates 0600.
func Plist(p *Plan) []byte {
	job := dict{
		{"Label", p.Launchd.Label},
		{"ProgramArguments", append([]string{p.Exe}, p.Args...)},
		{"RunAtLoad", true},
		{"KeepAlive", dict{{"SuccessfulExit", false}}},
		{"StandardOutPath", p.LogFile},
		{"StandardErrorPath", p.LogFile},
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writeValue(&b, job, "")
	b.WriteString("</plist>\n")
	return b.Bytes()
}

// dict is a property-list dictionary whose keys keep their order.
type dict []entry

type entry struct {
	key   string
	value any // string, bool, int, []string or dict
}

// writeValue writes v as property-list XML at indent.
func writeValue(b *bytes.Buffer, v any, indent string) {
	switch v := v.(type) {
	case string:
		b.WriteString(indent + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case bool:
		b.WriteString(indent + "<" + strconv.FormatBool(v) + "/>\n")
	case int:
		b.WriteString(indent + "<integer>" + strconv.Itoa(v) + "</integer>\n")
	case []string:
		b.WriteString(indent + "<array>\n")
		for _, s := range v {
			writeValue(b, s, indent+"\t")
		}
		b.WriteString(indent + "</array>\n")
	case dict:
		b.WriteString(indent + "<dict>\n")
		for _, e := range v {
			b.WriteString(indent + "\t<key>")
			xml.EscapeText(b, []byte(e.key))
			b.WriteString("</key>\n")
			writeValue(b, e.value, indent+"\t")
		}
		b.WriteString(indent + "</dict>\n")
	default:
		panic(fmt.Sprintf("plist: no encoding for %T", v))
	}
}

// launchctl runs launchctl with args; launchdSystem's real one is in
// launchd_darwin.go.
type launchctl func(args ...string) error

// launchdSystem installs through launchctl.
type launchdSystem struct {
	launchctl launchctl
	// euid is the effective user ID of this process.
	euid func() int
}

var _ system = (*launchdSystem)(nil)

func (l *launchdSystem) elevated() error {
	if l.euid() != 0 {
		return errors.New("it needs root: run it with sudo")
	}
	return nil
}

// loaded reports whether launchd knows the job.
func (l *launchdSystem) loaded(p *Plan) bool {
	return l.launchctl("print", "system/"+p.Launchd.Label) == nil
}

func (l *launchdSystem) installed(p *Plan) (bool, error) {
	if _, err := os.Stat(p.Launchd.PlistPath); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return l.loaded(p), nil
}

// prepare makes the state directory (0700) and the log file (0600), so
// launchd appends to a file only root can read.
func (l *launchdSystem) prepare(p *Plan) error {
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(p.StateDir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.LogFile), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// register writes the plist: root's, 0644, as launchd requires.
func (l *launchdSystem) register(p *Plan) error {
	return systemd.WriteFile(p.Launchd.PlistPath, Plist(p), 0o644)
}

// start loads the daemon; RunAtLoad starts it. A label disabled earlier
// (launchctl disable) would refuse to load, so it is enabled first.
func (l *launchdSystem) start(p *Plan) error {
	if err := l.launchctl("enable", "system/"+p.Launchd.Label); err != nil {
		return err
	}
	return l.launchctl("bootstrap", "system", p.Launchd.PlistPath)
}

// remove unloads the daemon, which stops the agent with SIGTERM, and
// deletes the plist.
func (l *launchdSystem) remove(p *Plan) error {
	if l.loaded(p) {
		if err := l.launchctl("bootout", "system/"+p.Launchd.Label); err != nil {
			return err
		}
	}
	if err := os.Remove(p.Launchd.PlistPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
