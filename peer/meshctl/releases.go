package meshctl

import "errors"

// Release verbs that talk to a broker. Being written (issue 15).

func (e *env) releasesTrust(args []string) error { return errors.New("releases trust: not built yet") }
func (e *env) releasesKey(args []string) error   { return errors.New("releases key: not built yet") }
func (e *env) releasesPublish(args []string) error {
	return errors.New("releases publish: not built yet")
}
func (e *env) releasesList(args []string) error { return errors.New("releases ls: not built yet") }
func (e *env) releasesShow(args []string) error { return errors.New("releases show: not built yet") }
func (e *env) releasesWithdraw(args []string) error {
	return errors.New("releases withdraw: not built yet")
}
