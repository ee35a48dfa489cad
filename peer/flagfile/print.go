package flagfile

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Print writes the effective configuration as a TOML config file: every
// key with its value, its flag's usage above it and where the value came
// from beside it. Loaded back, the file gives the same values.
func (c *Config) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Effective configuration of %s.\n", c.program)
	fmt.Fprintf(&b, "# Precedence: default < file < environment (%s*) < flags.\n", c.prefix)
	if c.file != "" {
		fmt.Fprintf(&b, "# File: %s (named by %s).\n", c.file, c.fileBy)
	} else {
		b.WriteString("# File: none.\n")
	}
	c.fs.VisitAll(func(f *flag.Flag) {
		if c.key(f.Name) == nil {
			return
		}
		_, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "\n# %s\n%s = %s # %s\n", strings.ReplaceAll(usage, "\n", "\n# "), f.Name, c.value(f), c.Origin(f.Name))
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// value returns f's value in TOML: numbers and booleans as themselves,
// lists as arrays of strings, anything else as the string its flag prints.
func (c *Config) value(f *flag.Flag) string {
	if c.lists[f.Name] {
		s := f.Value.String()
		if s == "" {
			return "[]"
		}
		items := strings.Split(s, ",")
		for i, item := range items {
			items[i] = quote(item)
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	switch v := f.Value.(flag.Getter).Get().(type) {
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint:
		return unsigned(uint64(v))
	case uint64:
		return unsigned(v)
	case float64:
		return float(v)
	}
	return quote(f.Value.String())
}

// unsigned writes v as a TOML integer, or as a string past TOML's int64.
func unsigned(v uint64) string {
	s := strconv.FormatUint(v, 10)
	if v > math.MaxInt64 {
		return quote(s)
	}
	return s
}

// float writes v as a TOML float.
func float(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case math.IsNaN(v):
		return "nan"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
