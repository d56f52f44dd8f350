// Package state keeps the controller's durable state: deployments, their
// immutable revisions, events, and the replicas the controller runs. Every
// change is one ACID transaction, fsynced on commit, so a crash at any
// point leaves exactly the state before or after it.
//
// Store is the seam: bbolt on one machine (this package's Bolt), etcd in a
// cluster later. Payloads are opaque bytes (the control package owns their
// format), so the store knows records and versions, not deployments.
package state

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors every implementation returns (wrapped), so callers can map them to
// exit codes and HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: the stored resource version is not the one expected.
	ErrConflict = errors.New("resource version conflict")
	// ErrCorrupt: the state cannot be read; the store refuses to start and
	// never overwrites it.
	ErrCorrupt = errors.New("state is corrupt or unreadable")
)

// Record is one deployment's current document.
type Record struct {
	Name string
	// ResourceVersion increases by one on every write of this record; it is
	// what optimistic concurrency compares.
	ResourceVersion int64
	// Revision is the number of the revision the record currently points
	// to: 0 (none) or a revision that exists once the change is applied.
	Revision int64
	Data     []byte // the document (spec and status), owned by the caller
	// Updated is set by the store (UTC) on every write; a caller's value
	// is ignored.
	Updated time.Time
}

// Revision is an immutable snapshot of a deployment's spec.
type Revision struct {
	Name    string
	Number  int64 // 1, 2, 3, ... per deployment, never reused
	Data    []byte
	Created time.Time // the store fills it (UTC) if zero
}

// Event is something that happened to a deployment, for people. A store
// keeps the newest DefaultMaxEvents per deployment (Bolt: configurable) and
// drops older ones as new ones arrive.
type Event struct {
	Time    time.Time `json:"time"`   // the store fills it (UTC) if zero
	Type    string    `json:"type"`   // Normal or Warning
	Reason  string    `json:"reason"` // e.g. Applied, RolledBack, CrashLoop
	Message string    `json:"message"`
}

// Change is one atomic write: the record (compared against Expect), an
// optional new revision, and events. Expect 0 means the record must not
// exist yet; any other value must equal the stored resource version (a
// missing record conflicts too). A new Revision's Number must be above
// every existing one, and its Name empty or the record's.
type Change struct {
	Record   Record
	Expect   int64
	Revision *Revision
	Events   []Event
	// KeepRevisions prunes the oldest revisions beyond this many (0 keeps
	// all); the one the record points to is never pruned.
	KeepRevisions int
}

// Store is the controller's durable state. Methods are safe for concurrent
// use. Not-found errors wrap ErrNotFound (asking for the revisions or
// events of a missing deployment included); a failed comparison wraps
// ErrConflict. Nothing is retried inside: a returned error means the change
// did not happen. Returned values are copies the caller may keep.
type Store interface {
	Get(ctx context.Context, name string) (*Record, error)
	List(ctx context.Context) ([]*Record, error)
	// Apply writes c atomically and returns the stored record with its new
	// ResourceVersion.
	Apply(ctx context.Context, c Change) (*Record, error)
	// Delete removes a record, its revisions and events if its resource
	// version is expect (ErrConflict otherwise, ErrNotFound if missing).
	Delete(ctx context.Context, name string, expect int64) error
	// Revisions returns the kept revisions, ascending by number.
	Revisions(ctx context.Context, name string) ([]*Revision, error)
	Revision(ctx context.Context, name string, number int64) (*Revision, error)
	// AppendEvents records events without touching the record (whose
	// resource version stays); the deployment must exist.
	AppendEvents(ctx context.Context, name string, events ...Event) error
	// Events returns the newest limit events (all kept if limit <= 0),
	// oldest first.
	Events(ctx context.Context, name string, limit int) ([]Event, error)
	// PutMeta and Meta keep small controller-wide values (the replicas it
	// runs, for adoption after a restart; the routing generation).
	PutMeta(ctx context.Context, key string, value []byte) error
	Meta(ctx context.Context, key string) ([]byte, error)
	// Snapshot writes a transactionally consistent copy of the whole state,
	// openable as a store of the same kind, while writes continue.
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}
