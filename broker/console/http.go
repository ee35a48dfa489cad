package console

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Body bounds: each route reads at most its own message. The broker's
// HTTP server bounds how long a body may take (its ReadTimeout).
const (
	maxLoginBody   = 1 << 10             // {"code": "rmc1_…"}
	maxSessionBody = wire.MaxSDP + 4<<10 // machine, mode and a WebRTC offer
	// MaxBody bounds any request body on the broker's HTTP port: the
	// largest message is a session request.
	MaxBody = maxSessionBody
)

// Bounded wraps the handler of the broker's HTTP port (the console, health
// and metrics): each request gets a write deadline of write from its
// start, and its body is bounded at MaxBody. The server sets no
// WriteTimeout of its own, which would cut the console's event stream;
// handlers that wait long on purpose set later deadlines themselves.
func Bounded(h http.Handler, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(write))
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h.ServeHTTP(w, r)
	})
}

// readBody decodes r's JSON body into v, reading at most limit bytes. The
// error says what went wrong; want describes the body expected.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any, want string) *wire.Error {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit)).Decode(v)
	var tooLarge *http.MaxBytesError
	var nerr net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return wire.Errorf(wire.CodeTooLarge, "the body is over %d bytes", limit)
	case errors.As(err, &nerr) && nerr.Timeout():
		return wire.Errorf(wire.CodeBadRequest, "the body did not arrive in time")
	default:
		return wire.Errorf(wire.CodeBadRequest, "the body must be %s: %v", want, err)
	}
}

// writeWithin gives a handler that waited d to write its response, from
// now.
func writeWithin(w http.ResponseWriter, d time.Duration) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// statusWriter remembers the status a handler wrote, for the log. It
// passes Flush and the rest through Unwrap (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// statusOf maps wire error codes to HTTP statuses.
var statusOf = map[string]int{
	wire.CodeBadRequest: http.StatusBadRequest, wire.CodeTooLarge: http.StatusRequestEntityTooLarge,
	wire.CodeUnauthorized: http.StatusUnauthorized, wire.CodeForbidden: http.StatusForbidden,
	wire.CodeNotFound: http.StatusNotFound, wire.CodeConflict: http.StatusConflict,
	wire.CodeTokenInvalid: http.StatusUnauthorized, wire.CodeUnavailable: http.StatusServiceUnavailable,
	wire.CodeGone: http.StatusGone,
}

// writeErr writes a wire error with the HTTP status of its code.
func writeErr(w http.ResponseWriter, e *wire.Error) {
	status := statusOf[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": e})
}
