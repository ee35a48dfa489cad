package flagfile

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// ConfigFlag is the name of the flag that names the config file.
const ConfigFlag = "config"

// Options say how one program's flags map to a file and the environment.
type Options struct {
	// Program names the environment variables: READYMESH_<PROGRAM>_<FLAG>,
	// e.g. "broker" for READYMESH_BROKER_HTTP_READ_TIMEOUT. It must not be
	// empty.
	Program string

	// Lists names the flags whose value is a comma-separated list. The file
	// may give them an array of strings (joined with commas for the flag's
	// Set), and Print writes them as arrays. Nil means none.
	Lists []string

	// Environ is the environment in os.Environ's form. Nil means
	// os.Environ(); an empty slice reads no variable (to check a file that
	// another process will read with its own environment).
	Environ []string
}

// DefineConfig defines the flag --config on fs, the file Load reads, and
// returns its value.
func DefineConfig(fs *flag.FlagSet, program string) *string {
	return fs.String(ConfigFlag, "", fmt.Sprintf("TOML `file` of flag values, one key per flag (e.g. http-read-timeout = \"20s\"); %s* variables and flags override it (default: none, or $%s)",
		envPrefix(program), envPrefix(program)+"CONFIG"))
}

// Kind is the kind of source a value came from.
type Kind int

// The sources, lowest precedence first.
const (
	Default Kind = iota // the flag's default
	File                // the config file
	Env                 // an environment variable
	Flag                // the command line
)

// Origin says where a flag's value came from.
type Origin struct {
	Kind Kind
	// Name is the file's path (File), the variable (Env) or the flag as
	// given, "--name" (Flag); empty for Default.
	Name string
	// Line is the key's line in the file, from 1 (File); 0 otherwise, and
	// for a file that could not be read.
	Line int
}

// String says where, as an error or Print's comment does: "default",
// "broker.toml:7", "env READYMESH_BROKER_NAME", "flag --name".
func (o Origin) String() string {
	switch o.Kind {
	case File:
		if o.Line == 0 {
			return o.Name
		}
		return fmt.Sprintf("%s:%d", o.Name, o.Line)
	case Env:
		return "env " + o.Name
	case Flag:
		return "flag " + o.Name
	}
	return "default"
}

// Error is a value refused from a file or the environment.
type Error struct {
	Origin Origin
	// Key is the flag whose Set refused the value; empty when the key or
	// variable itself is refused, or the file could not be read.
	Key string
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", e.Origin, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Origin, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Config is the effective configuration of a flag set after Load: the
// values sit in the flags themselves, and Config says where each came
// from.
type Config struct {
	fs      *flag.FlagSet
	program string
	prefix  string          // READYMESH_<PROGRAM>_
	lists   map[string]bool // Options.Lists
	file    string          // the config file read; "" when none
	fileBy  Origin          // what named it: --config or the CONFIG variable
	origins map[string]Origin
}

// Load sets fs's flags from the config file and the environment, under
// the values the command line gave: call it after fs.Parse succeeded.
// Each file value, then each variable, is passed to its flag's Set, and
// then each flag the command line set is set again to the value it gave.
// A flag counts as a key only if its Value is a flag.Getter (a value, as
// every standard flag type is), so that a flag that acts when set
// (flag.Func) is never set twice: it stays on the command line only.
//
// The error joins an *Error for every refused key, value or variable; on
// error fs's values are a mix of sources and must not be used.
func Load(fs *flag.FlagSet, opt Options) (*Config, error) {
	c, err := newConfig(fs, opt)
	if err != nil {
		return nil, err
	}
	given := c.commandLine()
	env := c.environment(opt.Environ)
	c.file, c.fileBy = c.configFile(given, env)
	var errs []error
	if c.file != "" {
		errs = append(errs, c.loadFile(c.file)...)
	}
	errs = append(errs, c.loadEnv(env)...)
	errs = append(errs, c.restore(given)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// newConfig checks opt against fs.
func newConfig(fs *flag.FlagSet, opt Options) (*Config, error) {
	if opt.Program == "" {
		return nil, errors.New("flagfile: Options.Program is empty")
	}
	c := &Config{fs: fs, program: opt.Program, prefix: envPrefix(opt.Program),
		lists: map[string]bool{}, origins: map[string]Origin{}}
	for _, name := range opt.Lists {
		if c.key(name) == nil {
			return nil, fmt.Errorf("flagfile: list %q is not a key of %s", name, fs.Name())
		}
		c.lists[name] = true
	}
	return c, nil
}

// envPrefix is the prefix of program's variables.
func envPrefix(program string) string {
	return "READYMESH_" + strings.ToUpper(program) + "_"
}

// key returns the flag that the key or variable name stands for, or nil.
func (c *Config) key(name string) *flag.Flag {
	f := c.fs.Lookup(name)
	if f == nil || name == ConfigFlag {
		return nil
	}
	if _, ok := f.Value.(flag.Getter); !ok {
		return nil
	}
	return f
}

// commandLine returns the values the command line gave, by flag name.
func (c *Config) commandLine() map[string]string {
	given := map[string]string{}
	c.fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	return given
}

// environment returns the program's variables in environ (nil: the
// process's environment).
func (c *Config) environment(environ []string) map[string]string {
	if environ == nil {
		environ = os.Environ()
	}
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, c.prefix) {
			env[k] = v
		}
	}
	return env
}

// configFile returns the file to read and what named it: --config, else
// the program's CONFIG variable, else none ("").
func (c *Config) configFile(given, env map[string]string) (string, Origin) {
	if c.fs.Lookup(ConfigFlag) == nil {
		return "", Origin{}
	}
	if path, ok := given[ConfigFlag]; ok {
		return path, Origin{Kind: Flag, Name: "--" + ConfigFlag}
	}
	if path := env[c.prefix+"CONFIG"]; path != "" {
		return path, Origin{Kind: Env, Name: c.prefix + "CONFIG"}
	}
	return "", Origin{}
}

// set passes text to the flag's Set and records where it came from.
func (c *Config) set(f *flag.Flag, text string, at Origin) error {
	if err := f.Value.Set(text); err != nil {
		return &Error{Origin: at, Key: f.Name, Err: setError(f, text, err)}
	}
	c.origins[f.Name] = at
	return nil
}

// setError says why Set refused text, with the value as the flag package
// does. For a duration it says why as time.ParseDuration does: the flag
// package's own error is only "parse error".
func setError(f *flag.Flag, text string, err error) error {
	if _, ok := f.Value.(flag.Getter).Get().(time.Duration); ok {
		if _, perr := time.ParseDuration(text); perr != nil {
			return perr
		}
	}
	if len(text) > 80 {
		text = text[:80] + "…"
	}
	return fmt.Errorf("invalid value %q: %w", text, err)
}

// restore sets each flag the command line gave again to its value, over
// whatever the file and environment set.
func (c *Config) restore(given map[string]string) []error {
	var errs []error
	for _, name := range sortedKeys(given) {
		f := c.key(name)
		if f == nil {
			continue
		}
		if err := c.set(f, given[name], Origin{Kind: Flag, Name: "--" + name}); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Origin returns where the flag's value came from.
func (c *Config) Origin(name string) Origin { return c.origins[name] }

// File returns the config file read ("" when none) and what named it:
// the flag --config or the program's CONFIG variable.
func (c *Config) File() (path string, namedBy Origin) { return c.file, c.fileBy }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
