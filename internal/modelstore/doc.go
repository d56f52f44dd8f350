// Package modelstore keeps model versions on disk in a site directory:
//
//	<site>/models/<name>/<version>/manifest.json
//	<site>/models/<name>/<version>/<artifact files>
//
// A version is immutable once pushed. Push builds the version in a hidden
// staging directory beside it, fsyncs every file, and renames the directory
// into place, so a crash leaves either the whole version or nothing (stale
// staging directories are removed by the next Open). The manifest records
// the format, the inputs and outputs, and the SHA-256 and size of every
// file; Verify checks them before a model is loaded.
//
// The store knows files, manifests and checksums; not HTTP, not runtimes.
// Validating an artifact is delegated to an Inspector supplied by the caller.
package modelstore
