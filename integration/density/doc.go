// Package density measures how much memory a broker holds per connected,
// idle agent, against the least a Go server holds per idle TLS connection
// measured in the same run. An MSP's broker spends most of its life holding
// thousands of bridges that carry nothing but a heartbeat a minute, so this
// is the figure that sizes brokers. For scale: Tailscale's derper holds
// 14.5–22 KB per idle TLS connection; our aim is 64 KB or less per idle
// agent over QUIC.
//
// The package holds tests and benchmarks only:
//
//	BenchmarkBridgeDensityBaselineTLS/conns=N  idle TLS 1.3 over TCP (B/conn)
//	BenchmarkBridgeDensity/agents=N            idle agents over QUIC (B/agent)
//	BenchmarkReconnectStorm/agents=N           every agent back at once after a broker restart
//	TestDensityHarness                         both at 50, so `make test` runs the harness
//
// for N = 1000 and 5000 (-short: 1000 only; READYMESH_DENSITY_SIZES, e.g.
// "5000,10000", lists others, up to 50,000). Each benchmark reports
// heap-B, rss-B and stack-B per peer and goroutines per peer; the bridge
// benchmark adds heap-x-tls and rss-x-tls, its ratios to the median
// baseline measured earlier in the same process (the baseline is declared
// first so that it runs first). One measurement is one expensive setup, so
// each -count runs it once; ns/op is that measurement's wall time and B/op
// what this process allocated playing the peers, neither a broker figure.
//
// # What is measured
//
// The broker is the real binary (built once per test process, or the one
// READYMESH_DENSITY_BROKER names) started as its own process on loopback
// with a 60 s heartbeat, so its memory is read without the clients': from
// its /metrics (go_memstats_heap_inuse_bytes, go_memstats_stack_inuse_bytes,
// process_resident_memory_bytes, go_goroutines). Nothing is triggered in it
// but GET /metrics: a reading waits until two GC cycles have completed
// since it began (the scrapes' own garbage starts them, within a bound), so
// the heap holds what is live rather than what the connection storm left,
// then takes the minimum of a few samples. Per-peer figures are (after −
// before)/N, "before" read with every agent already enrolled (the store is
// the same) and "after" read once /metrics counts all N online and every
// agent's first heartbeat is acknowledged.
//
// Enrolment runs once per test process per N, over the real protocol: the
// admin credential logs in (peer/tech), creates a client and one token with
// N uses, and each agent key enrols over its own bridge. The broker's data
// directory is then kept as a template; every measurement starts a fresh
// broker on a copy of it, so no run inherits another's heap or RSS.
//
// The baseline server is this test binary re-executed in a server role: TLS
// 1.3 with an in-memory self-signed certificate, one goroutine per
// connection blocked reading through a 4 KiB buffer (the broker's wire
// reader size), and the same Go and process collectors on /metrics, so it
// is read exactly as the broker is.
//
// # How 5000 agents fit in one process
//
// Running 5000 sessiond processes would measure the machine, not the
// broker, so this process plays the agents with the same protocol
// messages: hello, heartbeats, acks. Each agent is its own libp2p host with
// its own key, so the broker sees one distinct, mutually authenticated QUIC
// connection per agent and runs identify against a real libp2p peer,
// exactly as with sessiond; a lighter client without identify would leave
// out part of the broker's per-peer state. The hosts are trimmed of what
// costs only this process (resource and connection managers, metrics, TCP
// and WebSocket), and QUIC port reuse is off with each agent's UDP socket
// bound to its own loopback address (127.1.x.y; Linux routes all of
// 127.0.0.0/8 to lo). One address per agent is what a broker sees in the
// field, and it keeps the broker's per-address admission rate from pacing
// the run. At 5000 agents this process holds about 2 GB of heap, 90k
// goroutines and one UDP socket per agent; the broker holds its own side
// only. (The harness closes those sockets itself: with port reuse off,
// go-libp2p v0.51.0 leaves each dial's socket open when its connection
// closes, and TestDensityHarness checks that no descriptor leaks.) Sharing one quicreuse ConnManager would save this process a socket
// and a goroutine per agent, but would put every agent behind one source
// address.
//
// # What holds the memory
//
// With READYMESH_DENSITY_PROFILES=DIR the broker runs with --pprof on a
// loopback port and a heap profiling rate of one sample per 4 KiB. After
// each of its two readings a bridge measurement also takes a quiet one
// (the broker's /debug/memstats?gc=1: a full collection with no scrape in
// flight; a settled reading also counts what the scrapes allocated while
// the collector marked) and saves the heap profile of that collection,
// and the goroutines at the end. It then writes DIR/parts-agents=N.txt:
// the heap growth per agent by part (quic-go connection, streams and
// crypto streams; crypto/tls and quic-go key state; the agent's parsed
// certificate; libp2p's swarm, resource and connection managers, identify,
// peerstore and metrics; the broker's own tables and readers; goroutine
// descriptors), the runtime's span fragmentation (heap in use − heap
// allocated), which no profile shows, and what connecting allocated in all
// by the same parts. Fragmentation grows with the garbage the connection
// storm leaves between long-lived objects, so it follows GOGC;
// READYMESH_DENSITY_BROKER_ENV="GOGC=50" sets the broker's environment
// alone to measure that. With profiles off the benchmark runs as before.
//
// # Reconnect storms
//
// BenchmarkReconnectStorm brings N agents up and idle (as for density),
// kills the broker with SIGKILL, restarts it on the same store and ports,
// and brings every agent back as sessiond does: each loses its bridge at
// the kill, dials at a uniform draw from the reconnect window the broker
// gave in its hello (20 s for 5,000 agents at the default accept rate;
// a draw that fell while the broker was down dials the moment it is
// ready), on the same host, with a 10 s dial that skips libp2p's own dial
// backoff, then full-jitter backoff from 500 ms to 30 s. A technician
// runs the real `meshctl machines --json` as its own process, once a
// second, before (idle) and during the storm. It reports the time from the
// restarted broker's ready line until its /metrics counts N online, the
// restarted broker's peak RSS (VmHWM) against the first broker's settled
// RSS with N idle, the technician's median and slowest latency against
// the idle median, and the dial tries per agent; its log line also
// counts the failed tries by kind and the CPU seconds the broker and this
// process spent. On a two-core machine this process, playing 5,000
// agents' handshakes, takes more CPU than the broker: read the broker's
// CPU seconds as what the storm costs a broker with cores of its own.
// READYMESH_DENSITY_BROKER_FLAGS adds broker flags (e.g.
// "--max-handshakes 512") to compare admission settings; with
// READYMESH_DENSITY_PROFILES set it also saves the broker's CPU profile
// of the storm's first 30 s (cpu-storm-agents=N.pb.gz).
//
// # Rollouts
//
// BenchmarkRollout rolls one release (this tree's sessiond, signed and
// published with the real meshctl) out to 1,000 in-process agents, each
// on its own bridge: every agent checks the order against the pinned key
// and downloads the binary with sessiond/update's own fetcher, SHA-256
// checked; one in 25 also stages it and marks its trial healthy as the
// new binary would. It reports the time until the rollout is done, the
// broker's payload and wire bytes per agent against the binary's size,
// its peak RSS and CPU, against one `meshctl cp` of the same binary to a
// real sessiond in the same run (see its comment for each figure).
// TestRolloutHarness runs the same with 20 agents and a small binary.
//
// Every load loop is bounded: at most 64 dials in flight, three tries of
// 30 s each per agent, a deadline on every wait, and t.Cleanup / deferred
// teardown kills the processes and closes every connection, also on
// failure.
package density
