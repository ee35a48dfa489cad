//go:build !linux && !darwin && !windows

package netwatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// Watch reports network changes. It is implemented on Linux, macOS and
// Windows; here it returns an error wrapping errors.ErrUnsupported.
func Watch(ctx context.Context, cfg Config) (<-chan Change, error) {
	return nil, fmt.Errorf("netwatch: watching network changes on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
