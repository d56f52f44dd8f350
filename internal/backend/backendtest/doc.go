// Package backendtest is the conformance suite every backend.Backend runs
// in its own tests (the real ones included: local directory, S3 against a
// real server) so that the repository can rely on one contract: atomic
// Save that never overwrites, ranged Load, ErrNotFound and ErrExists,
// List that shows only complete files, concurrent use and context
// cancellation.
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend { return newTestBackend(t) })
//	}
//
// Each subtest gets a fresh, empty backend from the factory.
package backendtest
