package service

import (
	"context"
	"os"
	"path/filepath"
)

// enrolIn returns an enrol function that writes an agent key into dir and
// counts its calls.
func enrolIn(dir string, calls *int, err error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if err != nil {
			os.WriteFile(filepath.Join(dir, "agent.key"), []byte("key"), 0o600) // as sessiond.Enroll leaves it
			return err
		}
		return os.WriteFile(filepath.Join(dir, "agent.key"), []byte("key"), 0o600)
	}
}
