// Package local is the backend.Backend for a repository in a local
// directory (or any mounted file system):
//
//	config
//	keys/<name>
//	data/<first two characters of name>/<name>
//	index/<name>
//	snapshots/<name>
//	locks/<name>
//
// Pack files are spread over 256 subdirectories by the first two hex
// characters of their name so that no directory grows past what file
// systems list quickly. A Save writes a temporary file (".tmp-*") in the
// target's directory, fsyncs it, links it to its final name (which fails,
// atomically, if the name exists), removes the temporary name and fsyncs
// the directory: a crash leaves the whole file or none, plus at worst a
// temporary file that List ignores.
package local
