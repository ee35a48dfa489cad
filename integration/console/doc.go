// Package console holds the web console's browser tests: the real broker,
// agents and meshctl binaries on loopback, and Debian's chromium driven
// by chromedp, logging in, watching the fleet change live and running
// terminals over WebRTC.
//
// The whole test binary runs inside a network namespace of its own that
// holds nothing but a loopback interface (TestMain re-executes itself
// there with `ip netns exec`). A browser gathers WebRTC candidates on
// every interface it finds; in the namespace the only one is loopback,
// so no test packet can leave for any other address. That needs root:
// elsewhere the tests skip with the reason, and with
// READYMESH_REQUIRE_NETNS=1 (as in CI) they fail instead.
package console
