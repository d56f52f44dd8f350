// Package atomicfile writes files so that a crash at any moment leaves
// either the old content or the new, never a mix: write to a temporary file
// in the same directory, fsync it, rename it over the target, fsync the
// directory so the rename itself is durable.
package atomicfile
