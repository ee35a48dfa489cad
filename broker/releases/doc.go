// Package releases is the broker's room for agent releases: it keeps the
// signed manifests technicians publish and the binaries they upload, and
// hands the binaries to agents and to the other brokers.
//
// A release is signed offline with the fleet's release key (package
// peer/release); a broker holds only the public key, so a broker taken
// over can withdraw releases but never make one an agent installs.
// Publishing (OpReleasesPublish) checks the manifest's signature against
// the fleet's key and that every binary it names is stored here whole,
// then stores the release as a replicated record. A manifest that names a
// next key, signed by the current one, moves the fleet to that key as it
// is published: rotation needs the old key, never the broker.
//
// Binaries travel as blobs over wire.ProtoRelease, named by their SHA-256:
// admins upload them (put, resumable at what the broker holds), agents
// download the blob for their platform (get, resumable at what the agent
// holds), and brokers download from each other. Blobs are not replicated
// by anti-entropy: a broker asked for a blob it lacks, or holds partly,
// asks the other brokers at once which of them holds it whole and pulls
// it from the first that answers so, one pull per blob however many
// agents wait, while it serves each of them what it has stored so far.
// A source that fails, or is slower than Config.MinPullRate while
// another is known, is left for the next that answered. So a release
// costs the cluster one copy per broker that an agent actually asked,
// not one per broker per publication.
//
// Who may do what, by the key the bridge authenticated: agents (enrolled
// machines, not removed) get and ask has for the blobs of published
// releases that are not withdrawn; admins put and ask has; brokers of the
// cluster get and ask has. Every transfer is bounded: one upload at a
// time per technician, one download at a time per agent (a newer one
// replaces the older, which a reconnect leaves behind), a few at a time
// per broker, and a number for the whole broker beyond which downloads
// wait their turn (one waiting for a pull's bytes gives its turn back
// meanwhile); and each chunk must move within Config.Idle.
//
// Blobs that no live release names are swept once unused for a day (an
// upload that was never published), and those of withdrawn releases a
// month after the withdrawal.
package releases
