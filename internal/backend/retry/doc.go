// Package retry is a backend decorator that retries transient failures.
//
// An operation whose error is marked with backend.Retryable (timeouts, 5xx
// answers, throttling, dropped connections) is tried again after an
// exponentially growing, fully jittered pause; any other error (not found,
// exists, wrong credentials, a bad request, the caller's context ending) is
// returned at once. Retrying stops when the next pause would take the
// operation past Options.MaxElapsed; then the last error is returned, wrapped
// with the number of attempts. The bound is on retrying: one attempt that is
// slow (a big upload) is never cut short by it.
//
// What is replayed, and how:
//
//   - Save needs the data again for a second attempt. A reader that is an
//     io.Seeker is rewound to where it stood when Save was called; any other
//     reader of at most Options.MaxBuffer bytes is read into memory first;
//     a larger reader that cannot seek gets exactly one attempt. When a retry
//     finds the object already present (backend.ErrExists) with the expected
//     size, an earlier attempt stored it and only its answer was lost, so
//     Save reports success.
//   - Load may call fn more than once: a retry calls fn again with a fresh
//     reader from the same offset. fn must therefore start over on each call
//     (read into a fresh buffer, truncate what it wrote). fn's own errors are
//     retried only if they wrap a retryable error, e.g. a read error of the
//     body, which backends mark retryable.
//   - List delivers each name at most once: a retried listing skips the
//     names fn already saw.
//   - Remove is retried like the rest; a retry that finds the file gone
//     reports backend.ErrNotFound, as the contract wants for a missing
//     file, though an earlier attempt whose answer was lost may have
//     removed it. Callers that only want the file gone ignore ErrNotFound.
package retry
