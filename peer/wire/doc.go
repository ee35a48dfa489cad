// Package wire defines the messages that travel over a readymesh bridge: the
// libp2p streams between an agent or technician and its broker.
//
// Every protocol is a libp2p stream protocol with a versioned ID. Messages are
// JSON documents, each preceded by its length as an unsigned varint, so a
// reader knows the size before it allocates and can refuse an oversized
// message without reading it. JSON keeps the protocol debuggable by a network
// operator with a hex dump; the length prefix keeps it safe to parse.
//
// The decoders here are the first code that touches bytes from the network.
// They reject what is malformed (bad framing, bad JSON, fields out of range)
// with errors that say what was wrong, and they never panic: the fuzz targets
// in this package check that.
package wire
