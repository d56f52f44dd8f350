package repository

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Locks are leases: a lock file names its holder (host, user, pid), says
// whether it is exclusive, and carries the time of its last refresh and
// its lease. The holder refreshes it every lease/3 by writing a new lock
// file and removing the old one. A lock whose refresh is older than its
// lease, or whose holder is a process on this host that no longer exists,
// is stale: anyone may remove it.
//
// Shared locks (backups, check) coexist; an exclusive lock (prune,
// forget) excludes every other lock. Taking a lock writes the lock file
// and then lists the locks again, so of two processes racing for
// conflicting locks at least one sees the other and backs off.
type lockRecord struct {
	Time       time.Time `json:"time"`
	Exclusive  bool      `json:"exclusive"`
	Host       string    `json:"host"`
	User       string    `json:"user"`
	PID        int       `json:"pid"`
	StaleAfter int64     `json:"stale_after_ms"`
}

const (
	minLease = time.Second
	maxLease = 24 * time.Hour
)

func (l lockRecord) lease() time.Duration {
	return min(max(time.Duration(l.StaleAfter)*time.Millisecond, minLease), maxLease)
}

// stale reports whether the lock's holder is gone or has not refreshed it
// within its lease.
func (l lockRecord) stale(now time.Time, host string) bool {
	if now.Sub(l.Time) > l.lease() {
		return true
	}
	return l.Host == host && l.PID > 0 && !processExists(l.PID)
}

func (l lockRecord) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock by %s@%s (pid %d), refreshed %s", kind, l.User, l.Host, l.PID, l.Time.Format(time.RFC3339))
}

func decodeLock(c *crypter, data []byte) (lockRecord, error) {
	plain, err := c.openObject(kindLock, data)
	if err != nil {
		return lockRecord{}, err
	}
	var rec lockRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return lockRecord{}, fmt.Errorf("lock: %v: %w", err, ErrCorrupt)
	}
	return rec, nil
}

// LockInfo describes a lock file.
type LockInfo struct {
	ID        string    `json:"id"`
	Exclusive bool      `json:"exclusive"`
	Host      string    `json:"host"`
	User      string    `json:"user"`
	PID       int       `json:"pid"`
	Time      time.Time `json:"time"`
	Stale     bool      `json:"stale"`
	Err       string    `json:"error,omitempty"` // the lock file could not be read
}

type lockFile struct {
	name string
	rec  lockRecord
	err  error
}

func (r *Repository) readLocks(ctx context.Context) ([]lockFile, error) {
	names, err := listNames(ctx, r.be, backend.LockFile)
	if err != nil {
		return nil, err
	}
	var out []lockFile
	for name := range names {
		data, err := loadFile(ctx, r.be, backend.Handle{Type: backend.LockFile, Name: name}, 64<<10)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed while we listed: released or refreshed
		}
		lf := lockFile{name: name, err: err}
		if err == nil {
			lf.rec, lf.err = decodeLock(r.crypt, data)
		}
		out = append(out, lf)
	}
	return out, nil
}

// Locks lists the lock files.
func (r *Repository) Locks(ctx context.Context) ([]LockInfo, error) {
	files, err := r.readLocks(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []LockInfo
	for _, f := range files {
		info := LockInfo{ID: f.name}
		if f.err != nil {
			info.Err = f.err.Error()
		} else {
			info.Exclusive, info.Host, info.User, info.PID, info.Time = f.rec.Exclusive, f.rec.Host, f.rec.User, f.rec.PID, f.rec.Time
			info.Stale = f.rec.stale(now, r.opts.Host)
		}
		out = append(out, info)
	}
	return out, nil
}

// RemoveStaleLocks removes every stale lock and reports how many.
func (r *Repository) RemoveStaleLocks(ctx context.Context) (int, error) {
	files, err := r.readLocks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now()
	for _, f := range files {
		if f.err == nil && f.rec.stale(now, r.opts.Host) {
			if err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: f.name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return n, fmt.Errorf("remove stale lock %s: %w", f.name, err)
			}
			n++
		}
	}
	return n, nil
}

// conflict returns the first live lock not held by this Repository that
// conflicts with taking a lock of the given kind, removing stale locks on
// the way. Locks this Repository holds never conflict with each other, so
// a prune may run inside a forget's exclusive lock.
func (r *Repository) conflict(ctx context.Context, exclusive bool, own ...string) (string, error) {
	files, err := r.readLocks(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	for l := range r.held {
		own = append(own, l.currentName())
	}
	r.mu.Unlock()
	now := time.Now()
	for _, f := range files {
		if slices.Contains(own, f.name) {
			continue
		}
		if f.err != nil {
			if errors.Is(f.err, ErrUnsupportedFormat) {
				return fmt.Sprintf("lock %s written by a newer bulwark", f.name), nil
			}
			r.log.Warn("ignoring unreadable lock file", "lock", f.name, "err", f.err)
			continue
		}
		if f.rec.stale(now, r.opts.Host) {
			r.log.Info("removing stale lock", "lock", f.name, "holder", f.rec.String())
			if err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: f.name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return "", fmt.Errorf("remove stale lock %s: %w", f.name, err)
			}
			continue
		}
		if exclusive || f.rec.Exclusive {
			return f.rec.String(), nil
		}
	}
	return "", nil
}

func (r *Repository) writeLock(ctx context.Context, exclusive bool) (string, error) {
	rec := lockRecord{
		Time: time.Now().UTC(), Exclusive: exclusive, Host: r.opts.Host, User: r.opts.User,
		PID: os.Getpid(), StaleAfter: r.opts.StaleAfter.Milliseconds(),
	}
	plain, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	var id [32]byte
	rand.Read(id[:])
	name := hex.EncodeToString(id[:])
	if err := saveBytes(ctx, r.be, backend.Handle{Type: backend.LockFile, Name: name}, r.crypt.sealObject(kindLock, plain)); err != nil {
		return "", fmt.Errorf("write lock: %w", err)
	}
	return name, nil
}

func (r *Repository) removeLockFile(ctx context.Context, name string) error {
	err := r.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: name})
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("remove lock %s: %w", name, err)
	}
	return err
}

// Lock is a held repository lock, refreshed in the background until
// Unlock.
type Lock struct {
	r         *Repository
	exclusive bool
	stop      chan struct{}
	done      chan struct{}

	mu        sync.Mutex
	name      string
	refreshed time.Time // local clock, when the current lock file was written
	lost      error
}

func (l *Lock) currentName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name
}

// Exclusive reports the lock's kind.
func (l *Lock) Exclusive() bool { return l.exclusive }

// Valid returns nil while the lock is certainly held: its last refresh is
// younger than the lease and nobody removed it. Otherwise ErrLockLost.
func (l *Lock) Valid() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if age := time.Since(l.refreshed); age > l.r.opts.StaleAfter {
		return fmt.Errorf("%w: not refreshed for %s", ErrLockLost, age.Round(time.Millisecond))
	}
	return nil
}
