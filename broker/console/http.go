package console

import (
	"encoding/json"
	"net/http"

	"github.com/readymesh/readymesh/peer/wire"
)

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
