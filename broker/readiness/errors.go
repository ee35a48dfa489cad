package readiness

import "errors"

// ErrUnknownState is returned by ValidateArgs when a filter names a readiness
// state that does not exist.
var ErrUnknownState = errors.New("unknown readiness state")
