// Package flagfile lets a program's flags come from a TOML file and from
// the environment as well as from its command line. An operator keeps a
// broker's or an agent's settings in one file under configuration
// management, a container sets them from its environment, and neither needs
// a second description of the settings to keep in step with the flags:
// every flag of a standard library flag.FlagSet is a key, named like the
// flag and given as the command line would give it.
//
//	listen = ["0.0.0.0:7400", "[::]:7500"] # a comma-separated flag: an array, or one string
//	http-read-timeout = "20s"              # durations are strings, as on the command line
//	http-max-conns = 4096
//	busy-load = 0.9
//	record-input = true
//
// The file is flat, like a command line: no tables, no dotted keys.
//
// Precedence, lowest first: the flag's default, the file, the environment,
// the command line. A flag's variable is READYMESH_<PROGRAM>_<FLAG>, the
// flag's name upper-cased with "-" as "_" (READYMESH_BROKER_HTTP_READ_TIMEOUT
// for the broker's --http-read-timeout). The file is the one named by the
// flag --config, or else by READYMESH_<PROGRAM>_CONFIG; no file is read
// unless one is named, so a program started by hand never picks up a file
// it was not told about, and a service's unit names its file.
//
// Every value goes through its flag's own Set, so a file and the
// environment accept what the command line accepts and refuse it with the
// same message. A value that a higher source overrides is still set and
// checked: a file is accepted whole or refused, whatever today's command
// line holds. Refused, with the file's name and the key's line
// ("broker.toml:7: unknown key \"listne\" (did you mean \"listen\"?)"):
// keys that name no flag (a typo must not become a setting silently
// ignored), a key given twice, tables, dotted keys, dates, an array for a
// flag that takes one value, and any value its flag refuses. A variable
// under the program's prefix that names no flag is refused too.
//
// The TOML is read with the parser of github.com/pelletier/go-toml/v2
// (package unstable), which walks the document's expressions and gives the
// byte range of every key and value, so both kinds of refusal carry their
// line. The other well-kept libraries lose the line of one kind or the
// other: BurntSushi/toml keeps key positions private (MetaData.Undecoded
// lists unknown keys without a line, and a value's line reaches only a
// TextUnmarshaler's error), and koanf flattens documents into maps with no
// positions at all. The unstable package carries no compatibility promise;
// its use is confined to file.go.
//
// Config.Print writes every value, for "broker config print". No flag
// carries a secret: gossip keys and credentials live in files that flags
// name (--gossip-key-file), and a future flag must keep it that way rather
// than put a secret where Print, ps and the environment show it.
package flagfile
