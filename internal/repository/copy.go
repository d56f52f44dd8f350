package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// CopyReport is what Copy did.
type CopyReport struct {
	Snapshots   int   `json:"snapshots"`    // copied
	Skipped     int   `json:"skipped"`      // already in the destination
	Blobs       int   `json:"blobs"`        // data blobs sent
	BytesCopied int64 `json:"bytes_copied"` // their size before compression
	Copied      []ID  `json:"copied"`       // ids of the snapshots copied
}

// copyWorkers bounds the blobs in flight: enough to hide a remote
// backend's latency, few enough to keep memory at a handful of blobs.
const copyWorkers = 4

// Copy copies snapshots from src into dst, sending only the data blobs dst
// lacks. Blobs are decrypted with src's key and sealed again with dst's,
// so the repositories need not share a password or key. A snapshot keeps
// its id (it is the hash of the same content), so one already in dst is
// skipped. Copying is resumable: the packs an interrupted copy finished
// are found by dst when it is next opened, and a rerun sends only the
// rest. It holds a shared lock on both repositories. progress, if not
// nil, is called once at a time, never concurrently.
func Copy(ctx context.Context, src, dst *Repository, snaps []*Snapshot, progress func(Progress)) (*CopyReport, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	srcLock, err := src.Lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("copy: source: %w", err)
	}
	defer srcLock.Unlock(context.WithoutCancel(ctx))
	dstLock, err := dst.Lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("copy: destination: %w", err)
	}
	defer dstLock.Unlock(context.WithoutCancel(ctx))

	have, err := dst.snapshotIDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("copy: list destination snapshots: %w", err)
	}
	inDst := make(map[ID]bool, len(have))
	for _, id := range have {
		inDst[id] = true
	}

	report := &CopyReport{Copied: []ID{}}
	var todo []*Snapshot
	for _, s := range snaps {
		if inDst[s.ID] {
			report.Skipped++
			continue
		}
		inDst[s.ID] = true // the same snapshot named twice is copied once
		todo = append(todo, s)
	}
	for i, s := range todo {
		progress(Progress{Phase: "snapshots", Done: int64(i), Total: int64(len(todo)), Unit: "files"})
		blobs, bytes, err := copySnapshot(ctx, src, dst, s, progress)
		report.Blobs += blobs
		report.BytesCopied += bytes
		if err != nil {
			return report, fmt.Errorf("copy snapshot %s: %w", s.ID.Short(), err)
		}
		report.Snapshots++
		report.Copied = append(report.Copied, s.ID)
	}
	progress(Progress{Phase: "snapshots", Done: int64(len(todo)), Total: int64(len(todo)), Unit: "files"})
	return report, nil
}

// copySnapshot copies one snapshot's data blobs dst lacks, its tree and
// the snapshot itself, checking that both keep their ids.
func copySnapshot(ctx context.Context, src, dst *Repository, s *Snapshot, progress func(Progress)) (int, int64, error) {
	tree, err := src.LoadTree(ctx, s.Tree)
	if err != nil {
		return 0, 0, err
	}
	var missing []ID
	seen := make(map[ID]bool)
	for _, n := range tree.Nodes {
		for _, id := range n.Content {
			if !seen[id] && !dst.HasBlob(DataBlob, id) {
				missing = append(missing, id)
			}
			seen[id] = true
		}
	}

	var (
		blobs, bytes, done atomic.Int64
		mu                 sync.Mutex
		errs               []error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int64(len(missing))
	progress(Progress{Phase: "blobs of " + s.ID.Short(), Total: total, Unit: "blobs"})
	parallel(ctx, len(missing), copyWorkers, func(i int) {
		id := missing[i]
		data, err := src.LoadBlob(ctx, DataBlob, id)
		if err == nil {
			var stored bool
			stored, err = dst.SaveBlobWithID(ctx, DataBlob, id, data)
			if stored {
				blobs.Add(1)
				bytes.Add(int64(len(data)))
			}
		}
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("data blob %s: %w", id.Short(), err))
			mu.Unlock()
			cancel()
			return
		}
		// One call at a time, so progress needs no locking of its own.
		mu.Lock()
		progress(Progress{Phase: "blobs of " + s.ID.Short(), Done: done.Add(1), Total: total, Unit: "blobs"})
		mu.Unlock()
	})
	nb, nbytes := int(blobs.Load()), bytes.Load()
	if err := errors.Join(errs...); err != nil {
		return nb, nbytes, err
	}
	if err := ctx.Err(); err != nil {
		return nb, nbytes, err
	}

	treeID, err := dst.SaveTree(ctx, tree)
	if err != nil {
		return nb, nbytes, err
	}
	if treeID != s.Tree {
		return nb, nbytes, fmt.Errorf("tree stored as %s, not %s as in the source: %w", treeID.Short(), s.Tree.Short(), ErrCorrupt)
	}
	// The snapshot may only point at durable data.
	if err := dst.Flush(ctx); err != nil {
		return nb, nbytes, err
	}
	c := *s
	id, err := dst.SaveSnapshot(ctx, &c)
	if err != nil {
		return nb, nbytes, err
	}
	if id != s.ID {
		return nb, nbytes, fmt.Errorf("snapshot stored as %s, not %s as in the source: %w", id.Short(), s.ID.Short(), ErrCorrupt)
	}
	return nb, nbytes, nil
}
