package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// RewriteThreshold: a pack at least this share unused (by stored bytes)
// is rewritten: its used blobs are copied to new packs and it is deleted.
// At one half, rewriting copies at most as many bytes as it frees; packs
// less wasteful than that are kept as they are.
const RewriteThreshold = 0.5

// PruneReport is what Prune did.
type PruneReport struct {
	PacksRemoved      int   `json:"packs_removed"` // wholly unused, deleted
	PacksRewritten    int   `json:"packs_rewritten"`
	PacksKept         int   `json:"packs_kept"`
	PacksWritten      int   `json:"packs_written"` // new packs holding the rewritten packs' used blobs
	BytesFreed        int64 `json:"bytes_freed"`
	BlobsRemoved      int   `json:"blobs_removed"`
	IndexFilesWritten int   `json:"index_files_written"`
	IndexFilesRemoved int   `json:"index_files_removed"`
}

// Prune removes the data no snapshot uses, under an exclusive lock. It
// first decides (from every snapshot's tree) which blobs are used and
// which packs to delete or rewrite, then, in this order: uploads new packs
// with the used blobs of rewritten packs, writes new index files that
// describe every pack that stays, deletes the old index files, and only
// then deletes packs. At any point a crash leaves a repository in which
// every indexed pack exists and every used blob is indexed or in a pack
// recovered by its trailer; running Prune again finishes the job.
//
// While Prune holds its lock no backup can take one (ErrLocked), and a
// backup that loaded the index before the prune reloads it when it takes
// its lock, so no backup deduplicates against a blob Prune deleted.
// Prune refuses to run when a snapshot, a tree or a used blob cannot be
// read: deleting on partial knowledge could lose data.
func (r *Repository) Prune(ctx context.Context, progress func(Progress)) (*PruneReport, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	progress(Progress{Phase: "index", Unit: "files"})
	res, err := r.loadIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	for _, fp := range res.problems {
		if fp.h.Type == backend.IndexFile && !errors.Is(fp.err, ErrCorrupt) {
			return nil, fmt.Errorf("prune: index file unreadable (not damaged; retry): %w", fp.err)
		}
		r.log.Warn("prune: unusable file left alone", "file", fp.h.String(), "err", fp.err)
	}
	r.useIndex(res)

	used, err := r.usedBlobs(ctx, progress)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	plan, err := planPrune(res, used)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	report := &PruneReport{PacksRemoved: len(plan.remove), PacksRewritten: len(plan.rewrite), PacksKept: len(plan.keep)}
	if len(plan.remove) == 0 && len(plan.rewrite) == 0 {
		return report, nil
	}

	newPacks, err := r.rewritePacks(ctx, plan, progress)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	report.PacksWritten = len(newPacks)
	if err := lock.Valid(); err != nil {
		return nil, fmt.Errorf("prune: before writing the new index: %w", err)
	}
	final := append(slices.Clone(plan.keep), newPacks...)
	written, err := r.writeFullIndex(ctx, final)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	report.IndexFilesWritten = len(written)

	// Old index files go before packs: until they are gone they may list
	// packs about to be deleted, and an index must never list a pack
	// that does not exist.
	progress(Progress{Phase: "delete index", Total: int64(len(res.indexFiles)), Unit: "files"})
	for name := range res.indexFiles {
		if slices.Contains(written, name) {
			continue
		}
		if err := lock.Valid(); err != nil {
			return nil, fmt.Errorf("prune: deleting old index files: %w", err)
		}
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.IndexFile, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("prune: delete index %s: %w", name, err)
		}
		report.IndexFilesRemoved++
	}

	doomed := append(slices.Clone(plan.remove), plan.rewrite...)
	progress(Progress{Phase: "delete packs", Total: int64(len(doomed)), Unit: "packs"})
	for i, p := range doomed {
		if err := lock.Valid(); err != nil {
			return nil, fmt.Errorf("prune: deleting packs: %w", err)
		}
		err := r.be.Remove(ctx, backend.Handle{Type: backend.PackFile, Name: p.ID.String()})
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, fmt.Errorf("prune: delete pack %s: %w", p.ID, err)
		}
		report.BytesFreed += int64(p.Size)
		report.BlobsRemoved += len(p.Blobs)
		progress(Progress{Phase: "delete packs", Done: int64(i + 1), Total: int64(len(doomed)), Unit: "packs"})
	}
	for _, p := range newPacks {
		report.BytesFreed -= int64(p.Size)
		report.BlobsRemoved -= len(p.Blobs)
	}
	if err := r.reloadIndex(ctx); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	return report, nil
}

// usedBlobs collects every blob a snapshot needs: its tree and the content
// of every file. Any snapshot or tree that cannot be read stops prune.
func (r *Repository) usedBlobs(ctx context.Context, progress func(Progress)) (map[blobKey]bool, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	used := make(map[blobKey]bool)
	for i, id := range ids {
		progress(Progress{Phase: "snapshots", Done: int64(i), Total: int64(len(ids)), Unit: "files"})
		s, err := r.LoadSnapshot(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%w (run check; prune deletes nothing while a snapshot is unreadable)", err)
		}
		used[blobKey{TreeBlob, s.Tree}] = true
		tree, err := r.LoadTree(ctx, s.Tree)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w (run check)", id.Short(), err)
		}
		for _, n := range tree.Nodes {
			for _, b := range n.Content {
				used[blobKey{DataBlob, b}] = true
			}
		}
	}
	return used, nil
}
