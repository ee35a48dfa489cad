// Package cluster is the membership and presence layer of the broker
// cluster. readymesh runs one broker per MSP region and keeps no shared
// database; the brokers find each other and share what is live through
// gossip (hashicorp/memberlist) instead.
//
// Membership: every broker is a memberlist node whose name is the broker's
// name and whose metadata (Meta: region, peer ID, HTTP and bridge
// addresses, agent and technician counts) rides memberlist's 512-byte node
// record. Members lists them as alive, suspect, dead or left. Failure
// detection is memberlist's SWIM with suspicion; Profile picks its timing
// (LAN within a region, WAN across regions). A broker that joins retries
// until a peer answers, and failed members are re-joined periodically, so
// brokers start in any order and partitions heal.
//
// A Cluster is one gossip pool with one timing. Brokers in several
// regions may run two (Pools): a fast LAN pool per region and a tolerant
// WAN pool of all brokers, so a neighbour's failure is noticed in seconds
// without mistaking a slow ocean crossing for one.
//
// Presence is reachability: which broker holds which machine's bridge right
// now. It is ephemeral and never stored. Each broker states only what it
// holds itself (SetOnline, SetOffline); statements are versioned per origin
// broker (an incarnation per process start and a sequence number), gossiped
// epidemically, and carried whole in push/pull anti-entropy, so a late
// joiner learns everything from its first exchange. Presence answers from
// the merged view; a machine held by a broker that failed or left is
// offline. See presence.go for the versioning and deletion rules.
//
// Machine notes say why a machine is away (asleep, shut down, lost): a
// small opaque body per machine that the broker's reachability layer sets
// (SetNote) and reads (Note, OnNote). Unlike presence a note is not tied
// to a live broker: the newest stamp wins whoever made it, and it stays
// after its broker leaves or fails, until Config.NoteTTL. Notes spread
// like presence and ride push/pull too, but only in a cluster whose every
// live member reads them, since brokers of earlier releases refuse a
// push/pull state they do not know whole. See note.go and notetable.go.
//
// News (a presence statement, a note, a broadcast) spreads two ways at
// once: each broker that first hears it sends it straight to a few random
// peers (one UDP packet each), and queues it for memberlist's gossip,
// which retransmits it piggybacked on its own traffic. The first makes a
// change reach 50 brokers in about a hundred milliseconds (see
// BenchmarkPresencePropagation), the second covers lost packets, and
// push/pull every PushPullInterval repairs whatever both missed.
//
// Readiness replication is not done here, but rides on it: StateHook puts a
// digest into every push/pull exchange, and Broadcast/OnMessage carry small
// control messages ("record X changed").
//
// A Cluster is created with New (which binds the transport) and runs after
// Start; Close leaves the cluster and stops everything. Gossip is encrypted
// with the keys of LoadKeyFile; a broker with another key cannot join and
// both sides log why.
package cluster
