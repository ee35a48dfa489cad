// Package readiness turns a machine's durable record into the readiness layer
// of its machine card, and orders and filters the technician's queue.
//
// A console that folds everything it knows about a machine into one
// online/offline light misleads in both directions: a machine whose bridge is
// down may be perfectly well known and worth planning work for, and a machine
// whose bridge is up may have an expired approval or a month of missing
// updates. So readymesh keeps three layers apart:
//
//   - readiness: what the stored state says, from the latest committed
//     check-in. It survives disconnects and broker restarts. This package
//     computes it.
//   - reachability: whether the machine's bridge to a broker is up now. It is
//     a network signal, never a health verdict; this package only copies it
//     into the card and sorts by it.
//   - session status: what a live session can do right now. Not handled here.
//
// # States
//
// Evaluate assigns one state, the first of these that applies:
//
//   - incomplete: the machine enrolled but never completed a check-in, or its
//     latest check-in reported no operating system.
//   - stale: the last check-in is older than twice the check-in interval plus
//     Policy.Grace. The interval is the one the agent reported, or
//     Policy.DefaultInterval. Exactly at the limit is not yet stale.
//   - consent-required: the machine requires approval for sessions and has
//     no approval on record, or no expiry for it, or the approval has
//     expired (an approval expiring exactly now has expired).
//   - degraded: the agent is older than Policy.AgentVersion (when that is
//     not set, than the newest agent version among the machines of its own
//     client: another client's agents never mark it behind), or it has more
//     than Policy.MaxPendingUpdates pending updates, or an update first
//     seen more than Policy.MaxPendingAge ago is still pending.
//   - ready: none of the above.
//
// Reasons lists every rule that applies, not only the winning one, as short
// sentences in the order above, so a technician sees at once everything that
// stands between the machine and ready.
//
// # Queue order
//
// Query builds a technician's whole listing: scope, cards, filters and this
// order. Sort and Query order cards by readiness first: ready, degraded,
// consent-required, stale, incomplete, so the machines a technician can work
// on now come first. Within a state, online machines come before offline ones;
// then cards are ordered by client, name and ID, compared byte-wise. ID is
// unique, so the order is total and the same on every broker.
package readiness
