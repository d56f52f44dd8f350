package repository

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Lock takes a shared (exclusive false) or exclusive lock. A conflicting
// live lock gives ErrLocked naming its holder; stale locks are removed on
// the way. Once the lock is held the in-memory index is brought up to
// date if anything changed since it was loaded, so that blobs a prune
// removed in between are never used for deduplication.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	if holder, err := r.conflict(ctx, exclusive); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	} else if holder != "" {
		return nil, fmt.Errorf("%w: %s", ErrLocked, holder)
	}
	name, err := r.writeLock(ctx, exclusive)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	// Someone may have written a conflicting lock between our check and
	// our write; whoever sees the other backs off.
	holder, err := r.conflict(ctx, exclusive, name)
	if err == nil && holder != "" {
		err = fmt.Errorf("%w: %s", ErrLocked, holder)
	}
	if err == nil {
		err = r.refreshIndex(ctx)
	}
	if err != nil {
		r.removeLockFile(context.WithoutCancel(ctx), name)
		return nil, fmt.Errorf("lock: %w", err)
	}
	l := &Lock{r: r, exclusive: exclusive, name: name, refreshed: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.held[l] = struct{}{}
	r.mu.Unlock()
	go l.refreshLoop()
	return l, nil
}

// Unlock stops refreshing and removes the lock file.
func (l *Lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	select {
	case <-l.stop:
		l.mu.Unlock()
		return nil // already unlocked
	default:
	}
	close(l.stop)
	l.mu.Unlock()
	<-l.done
	l.r.mu.Lock()
	delete(l.r.held, l)
	l.r.mu.Unlock()
	l.mu.Lock()
	name := l.name
	l.mu.Unlock()
	if err := l.r.removeLockFile(ctx, name); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

func (l *Lock) refreshLoop() {
	defer close(l.done)
	t := time.NewTicker(l.r.opts.StaleAfter / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if !l.refresh() {
				return
			}
		}
	}
}

// refresh writes a new lock file and removes the old one. It reports
// false when the lock is lost for good: someone removed our lock file,
// taking us for dead.
func (l *Lock) refresh() bool {
	ctx, cancel := context.WithTimeout(context.Background(), l.r.opts.StaleAfter/3)
	defer cancel()
	name, err := l.r.writeLock(ctx, l.exclusive)
	if err != nil {
		l.r.log.Warn("lock refresh failed; will retry", "err", err)
		return true
	}
	l.mu.Lock()
	old := l.name
	l.name = name
	l.mu.Unlock()
	err = l.r.removeLockFile(ctx, old)
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(err, backend.ErrNotFound) {
		l.lost = fmt.Errorf("%w: lock file %s was removed by someone who took it for stale", ErrLockLost, old)
		l.r.log.Error("repository lock lost", "lock", old)
		go l.r.removeLockFile(context.Background(), name)
		return false
	}
	if err != nil {
		l.r.log.Warn("removing old lock file failed", "lock", old, "err", err)
	}
	l.refreshed = time.Now()
	return true
}

// checkLocks returns ErrLockLost if any lock this repository holds is no
// longer certainly held.
func (r *Repository) checkLocks() error {
	r.mu.Lock()
	held := make([]*Lock, 0, len(r.held))
	for l := range r.held {
		held = append(held, l)
	}
	r.mu.Unlock()
	for _, l := range held {
		if err := l.Valid(); err != nil {
			return err
		}
	}
	return nil
}

// refreshIndex reloads the index if the index files or packs in the
// backend differ from what the in-memory index was built from.
func (r *Repository) refreshIndex(ctx context.Context) error {
	indexFiles, err := listNames(ctx, r.be, backend.IndexFile)
	if err != nil {
		return err
	}
	packs, err := listNames(ctx, r.be, backend.PackFile)
	if err != nil {
		return err
	}
	r.mu.Lock()
	same := len(indexFiles) == len(r.idx.files) && len(packs) == len(r.idx.packs)
	for name := range r.idx.files {
		if _, ok := indexFiles[name]; !ok {
			same = false
		}
	}
	for id := range r.idx.packs {
		if _, ok := packs[id.String()]; !ok {
			same = false
		}
	}
	r.mu.Unlock()
	if same {
		return nil
	}
	return r.reloadIndex(ctx)
}

// processExists reports whether a process with this pid runs on this
// host. Signal 0 checks without signalling; EPERM means it exists but is
// someone else's.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
