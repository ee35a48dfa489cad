// Package localctl is the broker's local control socket: how commands run
// on the broker's own machine reach the broker while it serves. `broker
// backup` is the first: the store is a bbolt file that one process holds
// locked, so a command that needs the store while the broker runs must ask
// the broker for it. Other operations join by registering a handler
// (Server.Handle) under a name of their own.
//
// The socket is DATA_DIR/broker.sock (SocketPath). The data directory is
// mode 0700 and the socket 0600, so only the broker's own account and root
// can open it; on Linux the server also reads the caller's uid from the
// socket (SO_PEERCRED) and refuses any other. That is the whole of the
// authentication, and it is enough: whoever can open the socket can read
// the data directory, which holds the store and the broker's key already.
// The socket is not reachable from the network, so it has no place on the
// bridge or the HTTP port, whose callers are strangers until they sign in.
//
// # Protocol
//
// One request per connection. The client sends one line of JSON,
// {"op":"backup","args":{…}}, at most Config.MaxRequest bytes, within
// Config.RequestTimeout. The server answers with one line of JSON, the
// header: {"body":…} for a result, {"error":"…"} for a refusal, or
// {"stream":true} when a byte stream follows. A stream is a sequence of
// frames, each a 4-byte big-endian length and that many bytes (at most
// 64 KiB), ended by a frame of length 0 and a trailer line shaped like a
// header ({"body":…} or {"error":"…"}), so a stream cut short, or one the
// operation could not finish, is never mistaken for a complete one. Then
// the server closes the connection.
//
// Bounds: Config.MaxConns connections are served at once (a caller beyond
// them gets {"error":"busy…"} at once); a request must arrive whole within
// Config.RequestTimeout; and a caller that stops reading a reply for
// Config.WriteTimeout is cut off, so it cannot hold what the operation
// holds (the backup's read transaction) for long. Requests that are not
// understood are refused, logged, and change nothing.
package localctl
