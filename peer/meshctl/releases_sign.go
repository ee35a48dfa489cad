package meshctl

import "errors"

// Release signing verbs: they need no broker. Being written (issue 15).

func (e *env) releasesKeygen(args []string) error {
	return errors.New("releases keygen: not built yet")
}
func (e *env) releasesSign(args []string) error { return errors.New("releases sign: not built yet") }
