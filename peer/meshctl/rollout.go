package meshctl

import "errors"

// Rollout verbs. Being written (issue 15).

func (e *env) rolloutStart(args []string) error  { return errors.New("rollout start: not built yet") }
func (e *env) rolloutList(args []string) error   { return errors.New("rollout ls: not built yet") }
func (e *env) rolloutStatus(args []string) error { return errors.New("rollout status: not built yet") }

// rolloutSet runs rollout pause, resume or abort.
func rolloutSet(verb, op string) func(*env, []string) error {
	return func(e *env, args []string) error { return errors.New("rollout " + verb + ": not built yet") }
}
