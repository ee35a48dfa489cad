// Package release reads, signs and checks agent releases: a signed
// manifest naming one sessiond binary per platform, and the directory
// that holds a release between `meshctl releases sign` and `meshctl
// releases publish`.
//
// Whoever can make agents run a new binary runs code on every machine of
// every client, so the update channel must not be only as safe as the
// brokers. A release is signed offline with a key the brokers never
// hold. A broker that is broken into can withhold a release or serve
// wrong bytes, but it cannot make an agent run anything the release key
// did not sign: each agent checks the manifest against the key it pinned
// at enrolment, then the binary against the manifest's SHA-256 and size.
// Brokers hold only the public key, to refuse at publish time what agents
// would refuse anyway.
//
// Why minisign: it is a small standard format (Ed25519 over the file's
// BLAKE2b-512 hash, a signed "trusted comment", a secret key file
// encrypted with a password through scrypt) with independent
// implementations. A release made here can be checked with the stock
// tool (minisign -Vm manifest.json -p release.pub), and a manifest signed
// by a release process that already uses minisign verifies here; nothing
// is home-made cryptography. One small JSON manifest is signed rather than
// each binary: one signature covers every platform, and agents check a
// binary by the hash they compute while downloading it. Verify does not
// rely on the trusted comment ("readymesh release VERSION", for people
// reading the signature): the manifest it covers names the version
// itself, so a manifest signed with the minisign tool's default comment
// verifies too.
//
// Key rotation: a manifest may name next_key. Since the manifest is
// signed by the current key, naming the next key is the current key's
// own word. Agents pin next_key once they have committed that release
// (run it and checked in healthy); brokers move the fleet's key to it
// when the release is published. A lost key cannot be rotated this way:
// its agents must be enrolled again, or be given the new key on the
// machine itself. A stolen key can be, but so can the thief, which makes
// it an incident to handle machine by machine, not a routine rotation.
package release
