// Package mem is a backend.Backend that keeps its files in memory, for unit
// tests of the repository and of backend decorators. It keeps the whole
// contract (atomic Save, ErrExists, ErrNotFound, ranges, context
// cancellation) and passes the conformance suite, so tests on it mean
// something for the real backends too.
package mem
