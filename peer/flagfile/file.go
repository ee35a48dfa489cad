package flagfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// maxFileSize bounds the config file read: one key per flag is a few KiB.
const maxFileSize = 1 << 20

// entry is one key = value line of a config file.
type entry struct {
	key  string
	line int
	text string   // a scalar as the command line would give it
	list []string // an array's elements as text; nil for a scalar
	bad  string   // why the value cannot be a flag's, if it cannot
}

// loadFile reads path and sets a flag from each of its keys.
func (c *Config) loadFile(path string) []error {
	at := Origin{Kind: File, Name: path}
	data, err := readFile(path)
	if err != nil {
		return []error{&Error{Origin: at, Err: err}}
	}
	entries, err := parseFile(path, data)
	if err != nil {
		return []error{err}
	}
	var errs []error
	first := map[string]int{} // key → its line
	for _, e := range entries {
		at.Line = e.line
		if prev, ok := first[e.key]; ok {
			errs = append(errs, &Error{Origin: at, Key: e.key, Err: fmt.Errorf("given again (first on line %d)", prev)})
			continue
		}
		first[e.key] = e.line
		if err := c.setEntry(e, at); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// readFile reads at most maxFileSize bytes of path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// setEntry sets the flag e names from e's value.
func (c *Config) setEntry(e entry, at Origin) error {
	f := c.key(e.key)
	if f == nil {
		return &Error{Origin: at, Err: c.unknownKey(e.key)}
	}
	if e.bad != "" {
		return &Error{Origin: at, Key: e.key, Err: errors.New(e.bad)}
	}
	text := e.text
	if e.list != nil {
		if !c.lists[f.Name] {
			return &Error{Origin: at, Key: e.key, Err: errors.New("takes one value, not an array")}
		}
		for _, item := range e.list {
			if strings.Contains(item, ",") {
				return &Error{Origin: at, Key: e.key, Err: fmt.Errorf("element %q holds a comma: give each value as its own element", item)}
			}
		}
		text = strings.Join(e.list, ",")
	}
	return c.set(f, text, at)
}

// unknownKey says why key is not a key of the flag set.
func (c *Config) unknownKey(key string) error {
	switch {
	case key == ConfigFlag && c.fs.Lookup(key) != nil:
		return errors.New("config names the file: it cannot be set in one")
	case c.fs.Lookup(key) != nil:
		return fmt.Errorf("--%s is given on the command line only", key)
	}
	if near := c.nearest(key); near != "" {
		return fmt.Errorf("unknown key %q (did you mean %q?)", key, near)
	}
	return fmt.Errorf("unknown key %q", key)
}

// parseFile returns the entries of a TOML document. A document that is not
// TOML, or has tables, is refused whole, with the line.
func parseFile(path string, data []byte) ([]entry, error) {
	var p unstable.Parser
	p.Reset(data)
	var entries []entry
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			entries = append(entries, keyValue(&p, e))
		case unstable.Table, unstable.ArrayTable:
			it := e.Key()
			it.Next()
			return nil, &Error{Origin: Origin{Kind: File, Name: path, Line: lineOf(&p, it.Node().Raw)},
				Err: errors.New("tables are not used: every key is at the top of the file, named like its flag")}
		}
	}
	if err := p.Error(); err != nil {
		return nil, syntaxError(&p, path, err)
	}
	return entries, nil
}

// keyValue turns a key = value expression into an entry.
func keyValue(p *unstable.Parser, e *unstable.Node) entry {
	it := e.Key()
	var parts []string
	var line int
	for it.Next() {
		if line == 0 {
			line = lineOf(p, it.Node().Raw)
		}
		parts = append(parts, string(it.Node().Data))
	}
	ent := entry{key: strings.Join(parts, "."), line: line}
	if len(parts) > 1 {
		ent.bad = "dotted keys are not used: every key is named like its flag"
		return ent
	}
	v := e.Value()
	if v.Kind != unstable.Array {
		ent.text, ent.bad = scalar(v)
		return ent
	}
	ent.list = []string{}
	items := v.Children()
	for items.Next() {
		text, bad := scalar(items.Node())
		if bad != "" {
			ent.bad = "array element: " + bad
			return ent
		}
		ent.list = append(ent.list, text)
	}
	return ent
}

// scalar returns a value as the command line would give it, or why it
// cannot be a flag's value.
func scalar(v *unstable.Node) (text, bad string) {
	switch v.Kind {
	case unstable.String, unstable.Bool:
		return string(v.Data), ""
	case unstable.Integer, unstable.Float:
		// TOML puts underscores between digits only; strconv's
		// ParseFloat takes none without a base prefix.
		return strings.ReplaceAll(string(v.Data), "_", ""), ""
	case unstable.Array:
		return "", "arrays hold strings, not arrays"
	case unstable.InlineTable:
		return "", "tables are not used: every key is named like its flag"
	}
	return "", "dates and times are not flag values: write a duration as a string, e.g. \"20s\""
}

// syntaxError is err, a TOML syntax error, with its line.
func syntaxError(p *unstable.Parser, path string, err error) error {
	at := Origin{Kind: File, Name: path}
	var pe *unstable.ParserError
	if !errors.As(err, &pe) {
		return &Error{Origin: at, Err: err}
	}
	if pe.Highlight != nil {
		at.Line = lineOfBytes(p, pe.Highlight)
	}
	return &Error{Origin: at, Err: fmt.Errorf("not TOML: %s", pe.Message)}
}

// lineOf returns the line of r in the parser's document, from 1; 0 when r
// is not in it (the parser promises it is, and panics otherwise: a broken
// promise costs the line, not the program).
func lineOf(p *unstable.Parser, r unstable.Range) (line int) {
	defer func() {
		if recover() != nil {
			line = 0
		}
	}()
	return p.Shape(r).Start.Line
}

// lineOfBytes is lineOf for a slice of the document.
func lineOfBytes(p *unstable.Parser, b []byte) (line int) {
	defer func() {
		if recover() != nil {
			line = 0
		}
	}()
	return lineOf(p, p.Range(b))
}
