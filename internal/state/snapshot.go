package state

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Reading a state file that no controller has open: a cold backup copies
// it, and a backup's copy is read to describe what it holds. Both open the
// file read-only (a shared lock: a running controller's exclusive lock makes
// them fail with ErrLocked after the timeout) and check it as OpenBolt does,
// so a damaged file is never backed up as if it were good.

// CopyBolt writes a transactionally consistent copy of the state file at
// path to w and returns the bytes written. The file is checked first
// (header, schema version, every value's checksum, bbolt's page check) and
// never written to. A controller holding the file makes it fail with
// ErrLocked once timeout (0: one second) has passed; a damaged file with
// ErrCorrupt. An empty file (never initialised) copies as nothing.
func CopyBolt(ctx context.Context, path string, w io.Writer, timeout time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db, err := openVerified(path, timeout)
	if err != nil || db == nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("copy state file %s: %w", path, err)
	}
	return n, nil
}

// OpenBoltReadOnly opens a state file for reading only, after the same
// checks as CopyBolt: the read methods work, the writing ones fail. It is
// how a copy taken by Snapshot or CopyBolt is inspected without changing
// it. A file of an older schema is refused (it needs a controller to
// migrate it), as is an empty one.
func OpenBoltReadOnly(path string, timeout time.Duration) (*Bolt, error) {
	db, err := openVerified(path, timeout)
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, &CorruptError{Path: path, Detail: "the file is empty (never initialised)"}
	}
	return &Bolt{db: db, path: path, maxEvents: DefaultMaxEvents}, nil
}

// openVerified opens path read-only and proves it usable. It returns nil
// and no error for an empty file.
func openVerified(path string, timeout time.Duration) (db *bolt.DB, err error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("open state file: %s is not a regular file", path)
	}
	if info.Size() == 0 {
		return nil, nil
	}
	if err := checkMetaPages(path, info.Size()); err != nil {
		return nil, err
	}
	// As in validate: a damaged page can fault or make bbolt panic; both
	// become ErrCorrupt, and the file (and its lock) is released.
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				file.Close()
			}
			db, err = nil, &CorruptError{Path: path, Detail: fmt.Sprint("unreadable page: ", r)}
		}
	}()
	db, err = bolt.Open(path, 0, &bolt.Options{
		ReadOnly: true,
		Timeout:  timeout,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
	})
	if err != nil {
		return nil, openError(path, err)
	}
	if err := checkReadable(db, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkReadable verifies the schema version, every checksum and the page
// structure in one read transaction.
func checkReadable(db *bolt.DB, path string) error {
	return db.View(func(tx *bolt.Tx) error {
		version, err := readSchemaVersion(tx)
		if err != nil {
			return &CorruptError{Path: path, Detail: err.Error()}
		}
		switch {
		case version > SchemaVersion():
			return fmt.Errorf("state file %s: %w", path, errNewer(version))
		case version < SchemaVersion():
			return fmt.Errorf("state file %s has schema version %d: start a controller on it once to migrate it to %d", path, version, SchemaVersion())
		}
		err = tx.ForEach(func(name []byte, b *bolt.Bucket) error { return verifyBucket(b, string(name)) })
		if err != nil {
			return &CorruptError{Path: path, Detail: err.Error()}
		}
		if err := checkPages(tx); err != nil {
			return &CorruptError{Path: path, Detail: err.Error()}
		}
		return nil
	})
}
