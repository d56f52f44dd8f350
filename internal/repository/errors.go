package repository

import "errors"

var (
	// ErrWrongPassword: no key file opens with the password given.
	ErrWrongPassword = errors.New("wrong password: no key in the repository opens with it")
	// ErrUnsupportedFormat: the repository (or one of its objects) has a
	// format version this program does not know; it was written by a
	// newer bulwark.
	ErrUnsupportedFormat = errors.New("unsupported repository format version")
	// ErrNotFound: a snapshot, blob or key that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: a checksum or authentication failure, or an object that
	// does not decode.
	ErrCorrupt = errors.New("corrupt")
	// ErrLocked: someone else holds a conflicting lock.
	ErrLocked = errors.New("repository is locked")
	// ErrAmbiguous: a snapshot id prefix that matches several snapshots.
	ErrAmbiguous = errors.New("ambiguous snapshot id prefix")
	// ErrLockLost: a lock this repository holds could not be refreshed in
	// time, or someone removed it as stale; work that relies on it must
	// stop before it writes anything that others depend on.
	ErrLockLost = errors.New("repository lock lost")
	// ErrExists: Init on a repository that already has a config.
	ErrExists = errors.New("repository already exists")
)
