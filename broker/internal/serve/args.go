package serve

import (
	"encoding/json"
	"errors"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Args decodes a technician operation's arguments and validates them
// (wire.Decode). No arguments decode as {}. A refusal names op.
func Args(op string, raw json.RawMessage, v any) *wire.Error {
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if err := wire.Decode(raw, v); err != nil {
		return wire.Errorf(wire.CodeBadRequest, "%s: %v", op, err)
	}
	return nil
}

// StoreError turns a store error into the wire error a technician sees:
// a name that exists is a conflict, a missing record not found, anything
// else internal.
func StoreError(err error) *wire.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrExists):
		return wire.Errorf(wire.CodeConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "%v", err)
	}
	return wire.Errorf(wire.CodeInternal, "%v", err)
}
