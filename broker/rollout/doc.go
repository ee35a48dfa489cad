// Package rollout takes one agent release to a set of machines: the
// rollout room. A rollout is planned once, when an admin starts it (its
// machines, fixed then, split into a canary wave and the rest), and then
// moved on by a driver that turns the plan into update jobs for the
// queue and the jobs' results and the machines' check-ins into each
// machine's step.
//
// Steps are not stored. Each is worked out, on every broker, from what is
// replicated: the machine's update job (its state, and the report of the
// agent's first check-in after the update, which the broker that took
// the check-in copies into the job) and the machine's record (its agent
// version). So a step costs no write, a broker that takes over the
// driving reads the same steps, and the rollout record changes only when
// the rollout does (a wave starts, it pauses, it ends).
//
// One broker drives a rollout: the one that started it, or, while that
// one is not alive in gossip, the alive broker with the smallest name.
// There is no election: every broker can tell from its member list who
// drives, and update jobs have IDs derived from the rollout and the
// machine, so two brokers driving at once during a partition queue the
// same job rather than two.
//
// The queue asks the room before it sends an update job (Admit): a
// paused rollout's jobs wait, an aborted rollout's or a withdrawn
// release's are cancelled, and no more than max-parallel machines of a
// rollout update at once (a sent job counts only while its machine is
// reachable: one that went offline mid-send holds no place). Jobs of
// offline machines stay queued and run
// when the machines come back, as any job does.
package rollout
