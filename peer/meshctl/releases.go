package meshctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// Release verbs that talk to a broker: trusting the fleet's first release
// key, publishing a signed release directory (its binaries uploaded
// first, resumably), and reading or withdrawing published releases.

func (e *env) releasesTrust(args []string) error {
	fs := flag.NewFlagSet("releases trust", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "FILE.pub")
	if err != nil {
		return err
	}
	text, err := readSmall(pos[0], 4<<10)
	if err != nil {
		return err
	}
	var k wire.ReleaseKey
	if err := e.do(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: text}, &k); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, k)
	}
	fmt.Fprintf(e.out, "the fleet trusts release key ID %s\n# enrolment tokens made from now on carry it; agents pin it when they enrol\n", k.KeyID)
	return nil
}

// readSmall reads a file of at most max bytes.
func readSmall(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(raw)) > max {
		return "", fmt.Errorf("%s is larger than %d bytes: not a minisign public key", path, max)
	}
	return string(raw), nil
}

func (e *env) releasesKey(args []string) error {
	fs := flag.NewFlagSet("releases key", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var k wire.ReleaseKey
	if err := e.do(wire.OpReleaseKey, nil, &k); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, k)
	}
	if k.PublicKey == "" {
		fmt.Fprintln(e.out, "no release key is trusted yet: run meshctl releases trust release.pub")
		return nil
	}
	fmt.Fprintf(e.out, "key ID      %s\npublic key  %s\nset by      %s at %s, via %s\n", k.KeyID, k.PublicKey, k.SetBy,
		k.SetAt.Local().Format(time.DateTime), k.Via)
	return nil
}

// upload is one binary's upload, as publish reports it.
type upload struct {
	Platform string `json:"platform"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	// Sent is the bytes sent: less than Size when the broker held part
	// of it already, zero when it held all of it.
	Sent int64 `json:"sent"`
}

// published is what publish prints with --json.
type published struct {
	Uploads []upload     `json:"uploads"`
	Release wire.Release `json:"release"`
}

func (e *env) releasesPublish(args []string) error {
	fs := flag.NewFlagSet("releases publish", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "DIR")
	if err != nil {
		return err
	}
	d, err := release.LoadDir(pos[0])
	if err != nil {
		return err
	}
	if err := e.publishable(d); err != nil {
		return err
	}
	var out published
	for _, b := range d.Manifest.Binaries {
		u, err := e.uploadBinary(b, d.Binaries[b.Platform], !*asJSON)
		if err != nil {
			return err
		}
		out.Uploads = append(out.Uploads, u)
	}
	if err := e.do(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature}, &out.Release); err != nil {
		return fmt.Errorf("publish %s: %w", d.Manifest.Version, err)
	}
	if *asJSON {
		return printJSON(e.out, out)
	}
	fmt.Fprintf(e.out, "published release %s, signed by key ID %s\n", out.Release.Version, out.Release.KeyID)
	if out.Release.NextKey != "" {
		fmt.Fprintln(e.out, "# the fleet's release key is now the release's next key; agents move to it as they install this release")
	}
	return nil
}

// publishable refuses, before any byte is uploaded, a release the broker
// would refuse at the end: no key trusted, another key, a version taken.
func (e *env) publishable(d release.Dir) error {
	var k wire.ReleaseKey
	if err := e.do(wire.OpReleaseKey, nil, &k); err != nil {
		return err
	}
	switch {
	case k.PublicKey == "":
		return errors.New("no release key is trusted yet: run meshctl releases trust release.pub first")
	case k.KeyID != d.KeyID:
		return fmt.Errorf("release %s is signed by key ID %s, but the fleet trusts key ID %s: sign it with the fleet's key",
			d.Manifest.Version, d.KeyID, k.KeyID)
	}
	var r wire.Release
	err := e.do(wire.OpReleasesShow, wire.VersionArgs{Version: d.Manifest.Version}, &r)
	var werr *wire.Error
	switch {
	case err == nil:
		return fmt.Errorf("release %s was published by %s at %s: sign a new version", r.Version, r.PublishedBy,
			r.PublishedAt.Local().Format(time.DateTime))
	case errors.As(err, &werr) && werr.Code == wire.CodeNotFound:
		return nil
	}
	return err
}

// uploadBinary uploads one binary, resuming at what the broker holds.
func (e *env) uploadBinary(b wire.ReleaseBinary, path string, say bool) (upload, error) {
	c, err := e.connect()
	if err != nil {
		return upload{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return upload{}, err
	}
	defer f.Close()
	if say {
		fmt.Fprintf(e.out, "%-14s %s  %s\n", b.Platform, b.SHA256[:12], humanBytes(b.Size))
	}
	sent, err := c.UploadBlob(e.ctx, b.SHA256, b.Size, f)
	if err != nil {
		return upload{}, fmt.Errorf("upload %s (%s): %w", b.Platform, path, err)
	}
	if say {
		switch {
		case sent == 0:
			fmt.Fprintf(e.out, "%-14s the broker holds it already\n", "")
		case sent < b.Size:
			fmt.Fprintf(e.out, "%-14s sent %s, resuming at what the broker held\n", "", humanBytes(sent))
		default:
			fmt.Fprintf(e.out, "%-14s sent %s\n", "", humanBytes(sent))
		}
	}
	return upload{Platform: b.Platform, SHA256: b.SHA256, Size: b.Size, Sent: sent}, nil
}

// humanBytes prints a size in the largest binary unit that keeps it above 1.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (e *env) releasesList(args []string) error {
	fs := flag.NewFlagSet("releases ls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var rs []wire.Release
	if err := e.do(wire.OpReleasesList, nil, &rs); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, nonNil(rs))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tPLATFORMS\tKEY\tPUBLISHED\tBY")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Version, releaseState(r), platforms(r), r.KeyID,
			r.PublishedAt.Local().Format(time.DateTime), r.PublishedBy)
	}
	return tw.Flush()
}

func releaseState(r wire.Release) string {
	if r.Withdrawn {
		return "withdrawn"
	}
	return "published"
}

func platforms(r wire.Release) string {
	ps := make([]string, len(r.Binaries))
	for i, b := range r.Binaries {
		ps[i] = b.Platform
	}
	return strings.Join(ps, ",")
}

func (e *env) releasesShow(args []string) error {
	fs := flag.NewFlagSet("releases show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON, with the manifest and its signature")
	pos, err := parse(fs, args, "VERSION")
	if err != nil {
		return err
	}
	var r wire.Release
	if err := e.do(wire.OpReleasesShow, wire.VersionArgs{Version: pos[0]}, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	printRelease(e.out, r)
	return nil
}

// printRelease prints a release for people.
func printRelease(w io.Writer, r wire.Release) {
	fmt.Fprintf(w, "release     %s (%s)\n", r.Version, releaseState(r))
	if r.MinAgent != "" {
		fmt.Fprintf(w, "updates     agents %s and newer\n", r.MinAgent)
	}
	fmt.Fprintf(w, "signed by   key ID %s\npublished   %s by %s\n", r.KeyID, r.PublishedAt.Local().Format(time.DateTime), r.PublishedBy)
	if r.Withdrawn {
		fmt.Fprintf(w, "withdrawn   by %s\n", r.WithdrawnBy)
	}
	if r.NextKey != "" {
		fmt.Fprintf(w, "next key    %s\n", r.NextKey)
	}
	if r.Notes != "" {
		fmt.Fprintf(w, "notes       %s\n", r.Notes)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tSIZE\tON THIS BROKER\tSHA-256")
	for _, b := range r.Binaries {
		held := "whole"
		if b.Have < b.Size {
			held = fmt.Sprintf("%s (pulled from another broker when an agent asks)", humanBytes(b.Have))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Platform, humanBytes(b.Size), held, b.SHA256)
	}
	tw.Flush()
}

func (e *env) releasesWithdraw(args []string) error {
	fs := flag.NewFlagSet("releases withdraw", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "VERSION")
	if err != nil {
		return err
	}
	var r wire.Release
	if err := e.do(wire.OpReleasesWithdraw, wire.VersionArgs{Version: pos[0]}, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.out, r)
	}
	fmt.Fprintf(e.out, "withdrew release %s: no agent is offered it from now on, and rollouts of it stop\n", r.Version)
	return nil
}
