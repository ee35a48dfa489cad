package rtc

import (
	"os"
	"strconv"
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestMain(m *testing.M) {
	experimentTune = func(se *webrtc.SettingEngine) {
		if v := os.Getenv("EXP_RBUF"); v != "" {
			n, _ := strconv.Atoi(v)
			se.SetSCTPMaxReceiveBufferSize(uint32(n))
		}
		if os.Getenv("EXP_NOBLOCK") != "" {
			se.EnableDataChannelBlockWrite(false)
		}
		if os.Getenv("EXP_NOSNAP") != "" {
			se.EnableSctpSnap(false)
		}
		if v := os.Getenv("EXP_MINCWND"); v != "" {
			n, _ := strconv.Atoi(v)
			se.SetSCTPMinCwnd(uint32(n))
		}
		if os.Getenv("EXP_ZEROCSUM") != "" {
			se.EnableSCTPZeroChecksum(true)
		}
	}
	os.Exit(m.Run())
}
