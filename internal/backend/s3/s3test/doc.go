// Package s3test starts a real S3-compatible server, versitygw (Apache-2.0),
// on 127.0.0.1 for tests: a process serving a temporary directory, stopped
// at the test's cleanup, that a test may kill (SIGKILL) and restart on the
// same directory and port to play a crashed object store.
//
// The binary is found through BULWARK_VERSITYGW, then PATH, then the cache
// directory $HOME/.cache/bulwark-test/bin. When it is in none of them, the
// first Start builds it into the cache with the go command (about two
// minutes, once per machine), the same as
//
//	GOBIN=$HOME/.cache/bulwark-test/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// With BULWARK_NO_INSTALL=1 it does not build it: Start then fails with
// that advice, or skips under -short.
package s3test
