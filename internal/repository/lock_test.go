package repository

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// plantLock writes a lock file as another process would have.
func plantLock(t *testing.T, r *Repository, rec lockRecord) string {
	t.Helper()
	plain, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	name := Hash(plain).String()
	if err := saveBytes(context.Background(), r.be, backend.Handle{Type: backend.LockFile, Name: name}, r.crypt.sealObject(kindLock, plain)); err != nil {
		t.Fatal(err)
	}
	return name
}

func lockExists(t *testing.T, r *Repository, name string) bool {
	t.Helper()
	_, err := r.be.Stat(context.Background(), backend.Handle{Type: backend.LockFile, Name: name})
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLockConflicts(t *testing.T) {
	a, be := newTestRepo(t)
	b := reopen(t, be)
	ctx := context.Background()
	s1, err := a.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Lock(ctx, false)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	if _, err := b.Lock(ctx, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive while shared locks are held: %v, want ErrLocked", err)
	}
	s1.Unlock(ctx)
	s2.Unlock(ctx)
	x, err := b.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive after unlock: %v", err)
	}
	if _, err := a.Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared while an exclusive lock is held: %v, want ErrLocked", err)
	}
	if _, err := a.Prune(ctx, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("prune while an exclusive lock is held: %v, want ErrLocked", err)
	}
	if _, err := a.Check(ctx, CheckOptions{}, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("check while an exclusive lock is held: %v, want ErrLocked", err)
	}
	// The holder's own Repository may take further locks (prune inside
	// forget's exclusive lock).
	inner, err := b.Lock(ctx, true)
	if err != nil {
		t.Fatalf("second lock of the holder: %v", err)
	}
	inner.Unlock(ctx)
	if err := x.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if locks, _ := a.Locks(ctx); len(locks) != 0 {
		t.Fatalf("lock files left after unlock: %+v", locks)
	}
}

func TestStaleLockByAgeIsRemoved(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	old := plantLock(t, r, lockRecord{Time: time.Now().Add(-time.Hour), Exclusive: true, Host: "elsewhere", PID: 1, StaleAfter: 30000})
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatalf("lock past a stale one: %v", err)
	}
	defer l.Unlock(ctx)
	if lockExists(t, r, old) {
		t.Fatal("stale lock not removed")
	}
}

func TestStaleLockOfDeadProcessOnThisHost(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := cmd.Process.Pid
	fresh := time.Now()
	// Same host, fresh refresh, but the process is gone: stale.
	gone := plantLock(t, r, lockRecord{Time: fresh, Exclusive: true, Host: r.opts.Host, PID: dead, StaleAfter: 30000})
	l, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatalf("lock past a dead holder's: %v", err)
	}
	l.Unlock(ctx)
	if lockExists(t, r, gone) {
		t.Fatal("dead holder's lock not removed")
	}
	// Another host with the same pid: we cannot tell, so it holds.
	plantLock(t, r, lockRecord{Time: fresh, Exclusive: true, Host: "elsewhere", PID: dead, StaleAfter: 30000})
	if _, err := r.Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("fresh lock of another host: %v, want ErrLocked", err)
	}
}

func TestLockIsRefreshedAndLossIsNoticed(t *testing.T) {
	r, be := newTestRepo(t)
	r.opts.StaleAfter = 1500 * time.Millisecond // refreshed every 500 ms
	ctx := context.Background()
	l, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	first := l.currentName()
	waitFor(t, 10*time.Second, "a refresh", func() bool { return l.currentName() != first })
	if lockExists(t, r, first) {
		t.Fatal("refresh left the old lock file")
	}
	if err := l.Valid(); err != nil {
		t.Fatalf("refreshed lock not valid: %v", err)
	}
	// Someone takes us for dead and removes our lock file.
	other := reopen(t, be)
	if err := other.be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: l.currentName()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the loss to be noticed", func() bool { return l.Valid() != nil })
	if err := l.Valid(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Valid = %v, want ErrLockLost", err)
	}
	if _, err := r.SaveSnapshot(ctx, &Snapshot{}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("snapshot after losing the lock: %v, want ErrLockLost", err)
	}
}

// A backup that loaded the index before a prune must not deduplicate
// against blobs the prune deleted: taking its lock reloads the index.
func TestLockReloadsIndexChangedByPrune(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	data := randomBlob(1, 10000)
	s := backupFiles(t, r, []testFile{{"f", [][]byte{data}}})
	backup := reopen(t, be) // loads the index: knows the blob
	if !backup.HasBlob(DataBlob, Hash(data)) {
		t.Fatal("setup: blob unknown")
	}
	if err := r.RemoveSnapshot(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, nil); err != nil {
		t.Fatal(err)
	}
	l, err := backup.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	if backup.HasBlob(DataBlob, Hash(data)) {
		t.Fatal("after taking its lock the backup still trusts a pruned blob")
	}
	if _, stored, err := backup.SaveBlob(ctx, DataBlob, data); err != nil || !stored {
		t.Fatalf("pruned blob saved again: stored=%v err=%v", stored, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
