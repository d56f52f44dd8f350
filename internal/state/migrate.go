package state

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A migration upgrades a state file by exactly one schema version inside
// the caller's write transaction; it must not commit or roll back.
type migration func(tx *bolt.Tx) error

// migrations[i] upgrades version i to version i+1, so the schema this
// binary writes is len(migrations). Append only: a released migration is
// part of the format and never changes. Version 0 is an empty file, so
// creating a state file is just the first migration.
var migrations = []migration{
	createV1,
}

// SchemaVersion is the schema this binary reads and writes. A file with a
// higher version is refused; a lower one is migrated on open.
func SchemaVersion() int { return len(migrations) }

// createV1 lays out schema 1: the five top-level buckets.
func createV1(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketDeployments, bucketRevisions, bucketEvents, bucketController} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// upgrade brings an open file to SchemaVersion: every migration from the
// file's version runs in one write transaction, recording each step, so the
// whole upgrade commits or none of it does. A current file is not written
// at all. OpenBolt has validated the file already; the version is read
// again only because another process could have changed it in between.
func upgrade(db *bolt.DB, path string) error {
	var from int
	err := db.View(func(tx *bolt.Tx) (err error) { from, err = readSchemaVersion(tx); return err })
	switch {
	case err != nil:
		return &CorruptError{Path: path, Detail: err.Error()}
	case from > SchemaVersion():
		return fmt.Errorf("state file %s: %w", path, errNewer(from))
	case from == SchemaVersion():
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		for v := from; v < SchemaVersion(); v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
			if err := writeSchemaVersion(tx, v+1); err != nil {
				return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		return nil
	})
}

func errNewer(version int) error {
	return &sentinelError{fmt.Sprintf("schema version %d is newer than this binary knows (%d); run a newer bulwark (the file has not been modified)",
		version, SchemaVersion()), ErrNewerSchema}
}
