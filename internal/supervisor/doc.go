// Package supervisor runs local processes (node replicas) and keeps them
// running: a process that exits unexpectedly is restarted with exponential
// backoff, and one that keeps dying is reported as crash-looping (and still
// retried at the slowest pace, since the cause may go away). Stop sends
// SIGTERM, waits, then SIGKILLs.
//
// It knows processes, not models: `bulwark up` and the controller's
// reconciler decide what to run.
package supervisor
