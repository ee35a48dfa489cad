package collect

// Host returns the collectors for the machine the agent runs on.
func Host(cfg Config) []Collector { return Linux(cfg) }

// Load1 returns the machine's one-minute load average divided by its CPU
// count, read from /proc/loadavg: 1.0 means every core busy.
func Load1() (float64, error) { return Config{}.Load1() }

// Users returns the names of the people logged in, from utmp.
func Users() ([]string, error) { return Config{}.Users() }
