package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BoltOptions tune a Bolt store; the zero value is the production setting.
type BoltOptions struct {
	// Timeout is how long OpenBolt waits for another process to release
	// the file lock before failing with ErrLocked (0 means 1s): a second
	// controller should say so at once, not hang.
	Timeout time.Duration
	// MaxEvents is how many events are kept per deployment, the oldest
	// dropped first (0 means DefaultMaxEvents).
	MaxEvents int
}

// Bolt is the Store of a single-machine controller: one bbolt file, one
// transaction per call, fsynced on commit. Its layout is in schema.go and
// docs/state.md.
type Bolt struct {
	db        *bolt.DB
	path      string
	maxEvents int
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens the state file at path, creating it (not its directory)
// if missing. An existing file is validated read-only first (header,
// checksums of all values, page consistency) and is never modified when
// that fails: the error wraps ErrCorrupt, ErrNewerSchema or ErrLocked. An
// older schema is copied beside the file and migrated in one transaction.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	info, err := os.Stat(path)
	existed := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open state file: %w", err)
	case existed && !info.Mode().IsRegular():
		return nil, fmt.Errorf("open state file: %s is not a regular file", path)
	case existed && info.Size() > 0:
		// A zero-length file holds nothing to lose (bbolt writes its
		// header before anything else), so bbolt initialises it.
		if _, err := validate(path, info.Size(), opts.Timeout); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return nil, openError(path, err)
	}
	if err := upgrade(db, path); err != nil {
		db.Close()
		return nil, err
	}
	if !existed {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			db.Close()
			return nil, err
		}
	}
	return &Bolt{db: db, path: path, maxEvents: opts.MaxEvents}, nil
}

// Path is the state file's path.
func (b *Bolt) Path() string { return b.path }

// Close releases the file and its lock.
func (b *Bolt) Close() error { return b.db.Close() }

func (b *Bolt) corrupt(where string, err error) error {
	return &CorruptError{Path: b.path, Detail: where + ": " + err.Error()}
}

// getRecord returns the stored record, nil if there is none.
func (b *Bolt) getRecord(tx *bolt.Tx, name string) (*Record, error) {
	v := tx.Bucket(bucketDeployments).Get([]byte(name))
	if v == nil {
		return nil, nil
	}
	p, err := unseal([]byte(name), v)
	if err != nil {
		return nil, b.corrupt("deployments/"+name, err)
	}
	var e recordEnvelope
	if err := json.Unmarshal(p, &e); err != nil {
		return nil, b.corrupt("deployments/"+name, err)
	}
	return &Record{Name: name, ResourceVersion: e.ResourceVersion, Revision: e.Revision, Data: e.Data, Updated: e.Updated}, nil
}

func (b *Bolt) Get(ctx context.Context, name string) (rec *Record, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		rec, err = b.getRecord(tx, name)
		if err == nil && rec == nil {
			err = notFound(name)
		}
		return err
	})
	return rec, err
}

func (b *Bolt) List(ctx context.Context) (out []*Record, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployments).ForEach(func(k, _ []byte) error {
			rec, err := b.getRecord(tx, string(k))
			if err == nil && rec != nil {
				out = append(out, rec)
			}
			return err
		})
	})
	return out, err
}

func (b *Bolt) Apply(ctx context.Context, c Change) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkChange(&c); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rev, events := stamp(&c, now)
	name, key := c.Record.Name, []byte(c.Record.Name)
	out := &Record{Name: name, Revision: c.Record.Revision, Data: slices.Clone(c.Record.Data), Updated: now}
	err := b.db.Update(func(tx *bolt.Tx) error {
		cur, err := b.getRecord(tx, name)
		if err != nil {
			return err
		}
		var current int64
		if cur != nil {
			current = cur.ResourceVersion
		}
		if err := checkExpect(name, c.Expect, current); err != nil {
			return err
		}
		out.ResourceVersion = current + 1
		revs, err := tx.Bucket(bucketRevisions).CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		if rev != nil {
			if err := b.putRevision(revs, name, rev); err != nil {
				return err
			}
		}
		if out.Revision != 0 && revs.Get(itob(uint64(out.Revision))) == nil {
			return errMissingRevision(name, out.Revision)
		}
		payload, err := json.Marshal(recordEnvelope{out.ResourceVersion, out.Revision, out.Updated, out.Data})
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketDeployments).Put(key, seal(key, payload)); err != nil {
			return err
		}
		if err := b.appendEvents(tx, key, events); err != nil {
			return err
		}
		return b.pruneRevisions(revs, name, c.KeepRevisions, out.Revision)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (b *Bolt) putRevision(revs *bolt.Bucket, name string, rev *Revision) error {
	var highest int64
	if k, _ := revs.Cursor().Last(); k != nil {
		n, err := btoi(k)
		if err != nil {
			return b.corrupt("revisions/"+name, err)
		}
		highest = int64(n)
	}
	if err := checkRevisionNumber(name, rev.Number, highest); err != nil {
		return err
	}
	payload, err := json.Marshal(revisionEnvelope{rev.Number, rev.Created, rev.Data})
	if err != nil {
		return err
	}
	k := itob(uint64(rev.Number))
	return revs.Put(k, seal(k, payload))
}

func (b *Bolt) pruneRevisions(revs *bolt.Bucket, name string, keep int, pointed int64) error {
	if keep <= 0 {
		return nil
	}
	var numbers []int64
	err := revs.ForEach(func(k, _ []byte) error {
		n, err := btoi(k)
		numbers = append(numbers, int64(n))
		return err
	})
	if err != nil {
		return b.corrupt("revisions/"+name, err)
	}
	for _, n := range prunable(numbers, keep, pointed) {
		if err := revs.Delete(itob(uint64(n))); err != nil {
			return err
		}
	}
	return nil
}

// appendEvents keys events by the nested bucket's sequence, which never
// goes back, so sequences stay unique and ordered even after pruning.
func (b *Bolt) appendEvents(tx *bolt.Tx, key []byte, events []Event) error {
	eb, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists(key)
	if err != nil {
		return err
	}
	for _, e := range events {
		seq, err := eb.NextSequence()
		if err != nil {
			return err
		}
		payload, err := json.Marshal(e)
		if err != nil {
			return err
		}
		k := itob(seq)
		if err := eb.Put(k, seal(k, payload)); err != nil {
			return err
		}
	}
	// Sequences are contiguous from the oldest kept event, so everything
	// at or below seq-max is beyond the limit.
	var old [][]byte
	if seq := eb.Sequence(); seq > uint64(b.maxEvents) {
		cutoff := itob(seq - uint64(b.maxEvents))
		c := eb.Cursor()
		for k, _ := c.First(); k != nil && string(k) <= string(cutoff); k, _ = c.Next() {
			old = append(old, k)
		}
	}
	for _, k := range old {
		if err := eb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bolt) Delete(ctx context.Context, name string, expect int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		cur, err := b.getRecord(tx, name)
		if err != nil {
			return err
		}
		if cur == nil {
			return notFound(name)
		}
		if cur.ResourceVersion != expect {
			return fmt.Errorf("deployment %q: resource version %d is stale (current %d): %w", name, expect, cur.ResourceVersion, ErrConflict)
		}
		key := []byte(name)
		if err := tx.Bucket(bucketDeployments).Delete(key); err != nil {
			return err
		}
		for _, bucket := range [][]byte{bucketRevisions, bucketEvents} {
			if err := tx.Bucket(bucket).DeleteBucket(key); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
}

func (b *Bolt) AppendEvents(ctx context.Context, name string, events ...Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	events = stampEvents(events, time.Now().UTC())
	return b.db.Update(func(tx *bolt.Tx) error {
		rec, err := b.getRecord(tx, name)
		if err != nil {
			return err
		}
		if rec == nil {
			return notFound(name)
		}
		return b.appendEvents(tx, []byte(name), events)
	})
}

func (b *Bolt) PutMeta(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName("meta", key); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketController).Put([]byte(key), seal([]byte(key), value))
	})
}
