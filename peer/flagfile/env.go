package flagfile

import (
	"flag"
	"fmt"
	"strings"
)

// envName is the variable of the flag name.
func (c *Config) envName(name string) string {
	return c.prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// loadEnv sets a flag from each of the program's variables, in order of
// their names, and refuses those that name no flag.
func (c *Config) loadEnv(env map[string]string) []error {
	byVar := map[string]*flag.Flag{}
	c.fs.VisitAll(func(f *flag.Flag) {
		if c.key(f.Name) != nil {
			byVar[c.envName(f.Name)] = f
		}
	})
	var errs []error
	for _, v := range sortedKeys(env) {
		if v == c.prefix+"CONFIG" && c.fs.Lookup(ConfigFlag) != nil {
			continue // named the file
		}
		at := Origin{Kind: Env, Name: v}
		f := byVar[v]
		if f == nil {
			errs = append(errs, &Error{Origin: at, Err: c.unknownVar(v)})
			continue
		}
		if err := c.set(f, env[v], at); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// unknownVar says why v, a variable under the program's prefix, names no
// key.
func (c *Config) unknownVar(v string) error {
	name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v, c.prefix), "_", "-"))
	if c.fs.Lookup(name) != nil {
		return fmt.Errorf("--%s is given on the command line only", name)
	}
	if near := c.nearest(name); near != "" {
		return fmt.Errorf("no flag --%s of %s (did you mean %s?)", name, c.program, c.envName(near))
	}
	return fmt.Errorf("no flag --%s of %s", name, c.program)
}

// nearest returns the key closest to name within two edits (a typo), or
// "". Names longer than any flag's are no typo and are not compared.
func (c *Config) nearest(name string) string {
	best, bestDist := "", 3
	if len(name) > 64 {
		return ""
	}
	c.fs.VisitAll(func(f *flag.Flag) {
		if c.key(f.Name) == nil {
			return
		}
		if d := distance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
