// Package limit is a backend decorator that bounds how many operations run
// against the wrapped backend at once, so that many goroutines of a backup
// (or a restore) do not open more connections than a server or a link can
// take. A caller over the limit waits for a slot, or for its context to end.
//
// A slot is held for the whole operation: for Load that includes fn, and for
// List every call of fn. fn must therefore not call the same limited
// backend, or it may wait for a slot it holds itself.
//
// Stack it inside the retry decorator (retry.New(limit.New(be, n), ...)) so
// that a retry's pause does not hold a slot.
package limit
