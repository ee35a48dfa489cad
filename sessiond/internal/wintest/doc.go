// Package wintest holds what the agent's Windows tests share: whether
// they run under Wine, where some Windows functions are stubs and the
// tests say so instead of failing, and which accounts a security
// descriptor's access list admits, which the tests of the pipe, the
// service and the state directory all check. Keeping one copy means a
// fix to either (a Wine version that changes the tell-tale, an entry
// type the list reader must refuse) reaches every test at once.
//
// Only tests import it; it is empty outside Windows.
package wintest
