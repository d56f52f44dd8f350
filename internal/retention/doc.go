// Package retention decides which backup snapshots a forget policy keeps,
// with the rules restic users know: keep the last n snapshots, the newest
// snapshot of each of the last n hours, days, ISO weeks, months and years
// that have snapshots (calendar periods in local time), everything within
// a duration of the newest snapshot, and everything with given tags.
//
// A snapshot is kept when any rule keeps it, and each decision carries the
// reasons. When a calendar rule's count reaches further back than the
// snapshots do, the oldest snapshot is kept as well ("oldest daily"), so
// a young repository keeps its first snapshot.
//
// Apply works on one group of snapshots; grouping (by host, by site) is the
// caller's. It never touches a repository: the caller removes what is not
// kept, and must refuse to apply an empty policy, which keeps nothing by
// rule (Apply itself keeps everything for an empty policy, the safe side).
package retention
