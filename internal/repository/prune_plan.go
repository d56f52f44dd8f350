package repository

import (
	"context"
	"fmt"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// prunePlan sorts the packs into those that stay, those deleted outright
// and those rewritten (their used blobs copied first).
type prunePlan struct {
	keep, remove, rewrite []*packRecord
	copy                  map[ID][]blobEntry // per rewritten pack, the blobs to copy
}

// planPrune decides the fate of every pack. Each used blob is kept in
// exactly one place, preferring an undamaged pack with the highest share
// of used bytes; a pack holding no kept blob is removed, a damaged pack or
// one at least RewriteThreshold unused is rewritten.
func planPrune(res *indexLoad, used map[blobKey]bool) (*prunePlan, error) {
	for k := range used {
		if _, ok := res.idx.lookup(k); !ok {
			return nil, fmt.Errorf("%s used by a snapshot is not in the repository (run check; prune deletes nothing while data is missing)", k)
		}
	}
	damaged := make(map[ID]bool)
	for _, d := range res.damaged {
		damaged[d.rec.ID] = true
	}
	packs := res.idx.sortedPacks()
	usedBytes := make(map[ID]int64, len(packs))
	totalBytes := make(map[ID]int64, len(packs))
	for _, p := range packs {
		for _, e := range p.Blobs {
			totalBytes[p.ID] += int64(e.Length)
			if used[e.key()] {
				usedBytes[p.ID] += int64(e.Length)
			}
		}
	}
	better := func(a, b *packRecord) bool {
		if damaged[a.ID] != damaged[b.ID] {
			return !damaged[a.ID]
		}
		// Compare used shares without division: ua/ta > ub/tb.
		return usedBytes[a.ID]*totalBytes[b.ID] > usedBytes[b.ID]*totalBytes[a.ID]
	}
	chosen := make(map[blobKey]*packRecord)
	for _, p := range packs {
		for _, e := range p.Blobs {
			k := e.key()
			if !used[k] {
				continue
			}
			if cur, ok := chosen[k]; !ok || better(p, cur) {
				chosen[k] = p
			}
		}
	}
	plan := &prunePlan{copy: make(map[ID][]blobEntry)}
	for _, p := range packs {
		var kept []blobEntry
		var keptBytes int64
		seen := make(map[blobKey]bool)
		for _, e := range p.Blobs {
			k := e.key()
			if used[k] && chosen[k] == p && !seen[k] {
				seen[k] = true
				kept = append(kept, e)
				keptBytes += int64(e.Length)
			}
		}
		unused := totalBytes[p.ID] - keptBytes
		switch {
		case len(kept) == 0:
			plan.remove = append(plan.remove, p)
		case damaged[p.ID] || float64(unused) >= RewriteThreshold*float64(totalBytes[p.ID]):
			plan.rewrite = append(plan.rewrite, p)
			plan.copy[p.ID] = kept
		default:
			plan.keep = append(plan.keep, p)
		}
	}
	return plan, nil
}

// rewritePacks copies the kept blobs of the packs to rewrite into new
// packs, authenticating each on the way (a damaged blob stops prune rather
// than be copied), and returns the new packs once uploaded. The sealed
// bytes are copied as they are: a blob's seal does not depend on its pack.
func (r *Repository) rewritePacks(ctx context.Context, plan *prunePlan, progress func(Progress)) ([]*packRecord, error) {
	r.mu.Lock()
	r.autoIndex = false
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.autoIndex = true
		r.mu.Unlock()
	}()
	for i, p := range plan.rewrite {
		progress(Progress{Phase: "rewrite", Done: int64(i), Total: int64(len(plan.rewrite)), Unit: "packs"})
		data, err := loadFile(ctx, r.be, backend.Handle{Type: backend.PackFile, Name: p.ID.String()}, int64(p.Size)+(1<<20))
		if err != nil {
			return nil, fmt.Errorf("rewrite pack %s: %w", p.ID.Short(), err)
		}
		for _, e := range plan.copy[p.ID] {
			end := int64(e.Offset) + int64(e.Length)
			if end > int64(len(data)) {
				return nil, fmt.Errorf("rewrite pack %s: %s beyond its end (run check): %w", p.ID.Short(), e.key(), ErrCorrupt)
			}
			sealed := data[e.Offset:end]
			if _, err := r.openBlob(sealed, e, false); err != nil {
				return nil, fmt.Errorf("rewrite pack %s: %s: %w (run check)", p.ID.Short(), e.key(), err)
			}
			copied := blobEntry{Type: e.Type, Flags: e.Flags, ID: e.ID, RawLength: e.RawLength}
			if err := r.addToPack(ctx, copied, func(dst []byte) []byte { return append(dst, sealed...) }); err != nil {
				return nil, fmt.Errorf("rewrite pack %s: %w", p.ID.Short(), err)
			}
		}
	}
	if err := r.uploadAll(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		err := r.err
		r.err = nil
		return nil, err
	}
	newPacks := r.unindexed
	r.unindexed = nil
	progress(Progress{Phase: "rewrite", Done: int64(len(plan.rewrite)), Total: int64(len(plan.rewrite)), Unit: "packs"})
	return newPacks, nil
}

// writeFullIndex writes index files describing packs, at most
// indexFileBlobs blobs each, and returns their names.
func (r *Repository) writeFullIndex(ctx context.Context, packs []*packRecord) ([]string, error) {
	slices.SortFunc(packs, func(a, b *packRecord) int { return a.ID.Compare(b.ID) })
	var names []string
	for len(packs) > 0 {
		n, blobs := 0, 0
		for n < len(packs) && (n == 0 || blobs+len(packs[n].Blobs) <= indexFileBlobs) {
			blobs += len(packs[n].Blobs)
			n++
		}
		name, err := r.writeIndexFile(ctx, packs[:n])
		if err != nil {
			return names, err
		}
		names = append(names, name)
		packs = packs[n:]
	}
	return names, nil
}
