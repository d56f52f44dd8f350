// Package backend is the storage seam of the backup repository: a flat
// store of named files grouped by type (config, keys, data, index,
// snapshots, locks). The repository package writes its encrypted,
// content-addressed objects through it and never touches storage
// directly; implementations (local directory, memory, S3) know nothing
// about the repository format.
//
// The contract every implementation keeps, checked by the conformance
// suite in package backendtest:
//
//   - Save is atomic: afterwards the file is complete or absent, never
//     partial, even if the process dies half way. Save never overwrites:
//     a name that exists gives ErrExists and leaves the stored file as it
//     was. Names are never reused with other content by the repository
//     (most names are the hash of the content), so a Save that fails after
//     the file became visible and is retried gives ErrExists, which callers
//     treat as success when they know the content is the same.
//   - Load, Stat and Remove of a missing file return an error for which
//     errors.Is(err, ErrNotFound) holds, and nothing else does.
//   - Remove is not idempotent in its answer (a second Remove reports
//     ErrNotFound) but is in its effect; callers that only want the file
//     gone ignore ErrNotFound.
//   - List reports only complete files: temporary files of a Save in
//     progress or of a crashed one are never listed.
//   - Errors a caller may retry (timeouts, 5xx answers, throttling, a
//     dropped connection) are wrapped with Retryable; IsRetryable tells
//     them apart. Everything else is permanent: retrying cannot help
//     (not found, exists, permission denied, invalid name, a reader that
//     failed or delivered the wrong number of bytes).
//   - Every call honours its context: a cancelled context ends the call
//     with an error wrapping ctx.Err(), and a cancelled Save stores nothing.
//   - All methods are safe for concurrent use.
//
// Decorators (retry, concurrency limits) wrap a Backend and are Backends
// themselves.
package backend
