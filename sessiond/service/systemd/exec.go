package systemd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Exec renders argv as the value of ExecStart=, so that systemd runs
// exactly argv: argv[0] must be an absolute path. systemd reads the value
// in three passes, and each is escaped for: specifiers first ("%%" for a
// percent sign), then words split at blanks with quotes and C escapes
// (systemd.syntax(7)), then environment variables in each word ("$$" for a
// dollar sign). A word with a blank, a quote, a backslash or a control
// character, an empty word and a lone semicolon (once a command separator)
// are double-quoted; all others are written as they are.
func Exec(argv []string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = quoteWord(strings.ReplaceAll(a, "$", "$$"))
	}
	return strings.ReplaceAll(strings.Join(words, " "), "%", "%%")
}

// quoteWord quotes w for systemd's word splitting when it must be.
func quoteWord(w string) string {
	plain := w != "" && w != ";" && !strings.ContainsFunc(w, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\'
	})
	if plain {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ErrExecSyntax is what SplitExec returns for a value it does not read:
// one that uses more of systemd's command-line syntax than Exec writes.
var ErrExecSyntax = errors.New("ExecStart syntax Exec does not write")

// SplitExec reads an ExecStart= value back into the argument vector
// systemd runs, as systemd.service(5) and systemd.syntax(7) describe it:
// "%%" is a percent sign, words are split at blanks, quotes group, C
// escapes are decoded inside and outside quotes, and "$$" is a dollar
// sign. It refuses (ErrExecSyntax) what Exec never writes and what would
// need a running unit to expand: other specifiers, environment
// variables, command prefixes (@, -, :, +, !) and separators (;).
func SplitExec(value string) ([]string, error) {
	line, err := unspecify(value)
	if err != nil {
		return nil, err
	}
	var argv []string
	for rest := strings.TrimLeft(line, whitespace); rest != ""; rest = strings.TrimLeft(rest, whitespace) {
		if rest == ";" || strings.HasPrefix(rest, "; ") || strings.HasPrefix(rest, ";\t") {
			return nil, fmt.Errorf("%w: a command separator (;)", ErrExecSyntax)
		}
		var w string
		if w, rest, err = word(rest); err != nil {
			return nil, err
		}
		if w, err = unvariable(w); err != nil {
			return nil, err
		}
		argv = append(argv, w)
	}
	switch {
	case len(argv) == 0:
		return nil, fmt.Errorf("%w: no command", ErrExecSyntax)
	case !strings.HasPrefix(argv[0], "/"):
		return nil, fmt.Errorf("%w: the command %q is not an absolute path (or has a prefix)", ErrExecSyntax, argv[0])
	}
	return argv, nil
}

const whitespace = " \t\n\r"

// unspecify expands the one specifier Exec writes, %%.
func unspecify(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) || s[i+1] != '%' {
			return "", fmt.Errorf("%w: a specifier other than %%%%", ErrExecSyntax)
		}
		b.WriteByte('%')
		i++
	}
	return b.String(), nil
}

// unvariable expands the one variable reference Exec writes, $$.
func unvariable(w string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' {
			b.WriteByte(w[i])
			continue
		}
		if i+1 >= len(w) || w[i+1] != '$' {
			return "", fmt.Errorf("%w: an environment variable", ErrExecSyntax)
		}
		b.WriteByte('$')
		i++
	}
	return b.String(), nil
}

// word reads one word from the start of s, which is not blank, and
// returns it unquoted and unescaped, with the rest of s.
func word(s string) (string, string, error) {
	var b strings.Builder
	var quote byte // the open quote, or 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			r, n, err := unescape(s[i+1:])
			if err != nil {
				return "", "", err
			}
			b.WriteString(r)
			i += n
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case strings.IndexByte(whitespace, c) >= 0:
			return b.String(), s[i:], nil
		default:
			b.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", "", fmt.Errorf("%w: an unterminated quote", ErrExecSyntax)
	}
	return b.String(), "", nil
}

// unescape decodes the C escape whose backslash preceded s, and returns
// what it stands for and how many bytes of s it took.
func unescape(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("%w: a backslash at the end", ErrExecSyntax)
	}
	if r, ok := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v",
		'\\': `\`, '"': `"`, '\'': `'`, 's': " "}[s[0]]; ok {
		return r, 1, nil
	}
	if s[0] == 'x' && len(s) >= 3 {
		if n, err := strconv.ParseUint(s[1:3], 16, 8); err == nil {
			return string([]byte{byte(n)}), 3, nil
		}
	}
	return "", 0, fmt.Errorf("%w: the escape \\%c", ErrExecSyntax, s[0])
}
