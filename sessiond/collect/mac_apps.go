package collect

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// macProfilerPath is system_profiler, which lists the applications
// Spotlight knows of, with their versions.
const macProfilerPath = "/usr/sbin/system_profiler"

// macProfilerArgs ask for the applications as JSON.
var macProfilerArgs = []string{"SPApplicationsDataType", "-json"}

// Bounds on the application list. A Mac with a few hundred applications
// prints about a megabyte (each entry carries its path, signers and
// dates); a developer's with every simulator runtime a few thousand
// entries.
const (
	// macProfilerMax bounds system_profiler's output. More is refused,
	// not cut: half a JSON document is not a list of applications.
	macProfilerMax = 16 << 20
	// macAppsMax bounds the entries read. Past it the list is cut and
	// the collector reports that it is incomplete.
	macAppsMax = 2_000
)

// errMacAppsCut says the application list was cut at macAppsMax.
var errMacAppsCut = fmt.Errorf("more than %d applications, list cut", macAppsMax)

// errMacAppsBudget says the application list was cut at the packages'
// JSON budget (maxPackagesJSON), which keeps a check-in within
// wire.MaxSnapshot whatever the names hold.
var errMacAppsBudget = fmt.Errorf("the application list passed %d KiB of JSON, list cut", maxPackagesJSON>>10)

// macApp is the part of one system_profiler entry the snapshot keeps.
type macApp struct {
	Name    string `json:"_name"`
	Version string `json:"version"`
}

// collectMacApps fills s.Packages with the applications system_profiler
// lists. It is bounded in time by Config.AptTimeout, like the other slow
// collector: system_profiler walks every application bundle, which takes
// tens of seconds on a cold disk. A list cut at macAppsMax is kept and
// reported as an error, so the snapshot says it is incomplete.
func (m macMachine) collectMacApps(ctx context.Context, s *wire.Snapshot) error {
	return m.macTimeout(ctx, "packages", func(ctx context.Context) error {
		path, err := m.macTool(macProfilerPath)
		if err != nil {
			return err
		}
		out, _, err := m.macOutput(ctx, macProfilerMax, path, macProfilerArgs...)
		if err != nil {
			return err
		}
		apps, skips, err := parseApplications([]byte(out))
		if skips.n > 0 {
			m.log.Debug("system_profiler entries skipped", "skips", skips.String())
		}
		if err != nil && !errors.Is(err, errMacAppsCut) && !errors.Is(err, errMacAppsBudget) {
			return fmt.Errorf("system_profiler: %w", err)
		}
		s.Packages = apps
		m.log.Debug("collected applications", "count", len(apps))
		return err
	})
}

// parseApplications reads system_profiler's SPApplicationsDataType JSON:
//
//	{"SPApplicationsDataType": [{"_name": "Safari", "version": "17.2.1", ...}, ...]}
//
// It returns the applications sorted by name then version, each pair once
// (the same application installed twice at one version is one package; at
// two versions, two). Entries that are not objects, have no name, or have
// a field that is too long or holds control characters are skipped, with
// the reason in skips. Past macAppsMax entries it stops and returns what
// it has with errMacAppsCut. Input larger than macProfilerMax, input that
// is not JSON and a document without the list are errors.
func parseApplications(b []byte) (apps []wire.Package, skips macSkips, err error) {
	if len(b) > macProfilerMax {
		return nil, skips, fmt.Errorf("%d bytes, more than %d", len(b), macProfilerMax)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := macFindArray(dec, "SPApplicationsDataType"); err != nil {
		return nil, skips, err
	}
	apps = []wire.Package{}
	for i := 0; dec.More(); i++ {
		if i == macAppsMax {
			err = errMacAppsCut
			break
		}
		var a macApp
		if derr := dec.Decode(&a); derr != nil {
			why, ok := macTypeError(derr)
			if !ok {
				return nil, skips, fmt.Errorf("entry %d: %w", i, derr)
			}
			skips.add("entry %d: %s", i, why)
			continue
		}
		if p, why := macPackage(a); why != "" {
			skips.add("entry %d: %s", i, why)
		} else {
			apps = append(apps, p)
		}
	}
	if err == nil {
		// More is false at the end of the input too: a document cut
		// after a whole entry must not pass for a complete list.
		if cerr := macExpect(dec, json.Delim(']')); cerr != nil {
			return nil, skips, fmt.Errorf("list not closed: %w", cerr)
		}
	}
	slices.SortFunc(apps, func(x, y wire.Package) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.Version, y.Version))
	})
	apps = slices.Compact(apps)
	size := 0
	for i, p := range apps {
		if size += jsonLen(p); size > maxPackagesJSON {
			return slices.Clip(apps[:i]), skips, cmp.Or(err, errMacAppsBudget)
		}
	}
	return apps, skips, err
}

// macFindArray advances dec into the array under key in the top-level
// object, skipping the other keys' values.
func macFindArray(dec *json.Decoder, key string) error {
	if err := macExpect(dec, json.Delim('{')); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok == key {
			return macExpect(dec, json.Delim('['))
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return fmt.Errorf("no %s list", key)
}

// macExpect reads the next token and fails unless it is want.
func macExpect(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return errors.New("output ends early")
	}
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("found %v where %v was expected", tok, want)
	}
	return nil
}

// macTypeError describes a JSON value of the wrong type, after which the
// decoder has consumed the value and can go on. It reports false for any
// other error.
func macTypeError(err error) (string, bool) {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return "", false
	}
	if te.Field == "" {
		return fmt.Sprintf("not an object (%s)", te.Value), true
	}
	return fmt.Sprintf("%s is not a string (%s)", te.Field, te.Value), true
}

// macPackage checks one entry and turns it into a package, or says why
// not. An entry without a version is kept: the application is installed,
// only its bundle does not say which version it is.
func macPackage(a macApp) (wire.Package, string) {
	name, version := strings.TrimSpace(a.Name), strings.TrimSpace(a.Version)
	switch {
	case name == "":
		return wire.Package{}, "no name"
	case len(name) > macFieldMax || len(version) > macFieldMax:
		return wire.Package{}, fmt.Sprintf("%q: name or version longer than %d bytes", macClip(name), macFieldMax)
	case hasControl(name) || hasControl(version):
		return wire.Package{}, fmt.Sprintf("%q: control characters", macClip(name))
	}
	return wire.Package{Name: name, Version: version}, ""
}
