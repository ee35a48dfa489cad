package collect

import "time"

// unixEpochFileTime is 1970-01-01 UTC as a FILETIME: 100 ns units since
// 1601-01-01 UTC.
const unixEpochFileTime = 116_444_736_000_000_000

// bootID names a boot by the time it happened: the kernel's boot time
// (SYSTEM_TIMEOFDAY_INFORMATION.BootTime, 100 ns units since 1601 UTC)
// less its BootTimeBias, the sum of the clock changes since boot that the
// kernel added to the boot time to keep uptime right. Without them the
// boot time is the clock's reading at boot, fixed until the next boot, so
// the ID is stable across calls, agent restarts and clock changes
// (NTP, daylight saving does not touch UTC anyway), and differs from one
// boot to the next. It is formatted to the second, in UTC:
// "2024-01-15T08:30:12Z".
//
// Resuming from sleep, hibernation or Fast Startup's hybrid shutdown is
// not a boot and keeps the ID, which is what the broker wants to know: a
// machine that did not restart has not applied its pending updates.
func bootID(bootTime int64, bias uint64) string {
	t := int64(uint64(bootTime) - bias) // two's complement: a "negative" bias adds
	sec := (t - unixEpochFileTime) / 10_000_000
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}
