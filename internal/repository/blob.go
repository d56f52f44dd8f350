package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// HasBlob reports whether the repository has the blob, or has accepted it
// in a pack not yet uploaded.
func (r *Repository) HasBlob(t BlobType, id ID) bool {
	k := blobKey{t, id}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.idx.lookup(k); ok {
		return true
	}
	_, ok := r.pending[k]
	return ok
}

// SaveBlob stores data (compressed when it shrinks, encrypted) unless the
// repository already has it; stored reports whether it was new. It is safe
// for concurrent use from many goroutines; data may be reused by the
// caller once it returns. The blob is durable only after the pack holding
// it is uploaded: call Flush before saving a snapshot that refers to it.
// Hold a Lock (shared) while saving: it guarantees no prune removes the
// blobs this repository deduplicates against.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, data []byte) (ID, bool, error) {
	id := Hash(data)
	stored, err := r.SaveBlobWithID(ctx, t, id, data)
	return id, stored, err
}

// SaveBlobWithID is SaveBlob when the caller already computed id =
// Hash(data). A wrong id is caught when the blob is read back.
func (r *Repository) SaveBlobWithID(ctx context.Context, t BlobType, id ID, data []byte) (bool, error) {
	if !t.valid() {
		return false, fmt.Errorf("save blob: unknown blob type %d", t)
	}
	if len(data) > MaxBlobSize {
		return false, fmt.Errorf("save %s blob of %d bytes: larger than the %d byte limit", t, len(data), MaxBlobSize)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := blobKey{t, id}
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return false, err
	}
	_, known := r.idx.lookup(k)
	_, pending := r.pending[k]
	if known || pending {
		r.mu.Unlock()
		return false, nil
	}
	r.pending[k] = struct{}{}
	r.mu.Unlock()

	scratch := getScratch(len(data))
	payload, flags := compress(data, *scratch)
	err := r.addToPack(ctx, blobEntry{Type: t, Flags: flags, ID: id, RawLength: uint32(len(data))}, func(dst []byte) []byte {
		return r.crypt.sealBlob(dst, t, flags, id, payload)
	})
	putScratch(scratch)
	if err != nil {
		r.mu.Lock()
		delete(r.pending, k)
		r.mu.Unlock()
		return false, err
	}
	return true, nil
}

// addToPack appends a sealed blob to a packer of its type and sends the
// packer to upload when it reaches the pack size.
func (r *Repository) addToPack(ctx context.Context, e blobEntry, seal func([]byte) []byte) error {
	p, err := r.takePacker(ctx, e.Type)
	if err != nil {
		return err
	}
	p.addSealed(e, seal, r.opts.PackSize)
	if len(p.buf) >= r.opts.PackSize {
		r.dispatch(ctx, p)
	} else {
		r.returnPacker(p)
	}
	return nil
}

// LoadBlob reads, authenticates, decompresses and hash-checks a blob. A
// damaged blob gives an error wrapping ErrCorrupt that names the pack.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	k := blobKey{t, id}
	r.mu.Lock()
	loc, ok := r.idx.lookup(k)
	_, pending := r.pending[k]
	r.mu.Unlock()
	if !ok {
		if pending {
			return nil, fmt.Errorf("load %s: not uploaded yet (call Flush first): %w", k, ErrNotFound)
		}
		return nil, fmt.Errorf("load %s: %w", k, ErrNotFound)
	}
	e := loc.entry()
	h := backend.Handle{Type: backend.PackFile, Name: loc.pack.ID.String()}
	sealed, err := loadRange(ctx, r.be, h, int64(e.Offset), int64(e.Length))
	if err != nil {
		if errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrShortFile) {
			return nil, fmt.Errorf("load %s from pack %s: %w: %w", k, loc.pack.ID, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("load %s from pack %s: %w", k, loc.pack.ID, err)
	}
	data, err := r.openBlob(sealed, e, true)
	if err != nil {
		return nil, fmt.Errorf("load %s from pack %s: %w", k, loc.pack.ID, err)
	}
	return data, nil
}

// openBlob authenticates, decompresses and hash-checks one sealed blob;
// inPlace decrypts over sealed.
func (r *Repository) openBlob(sealed []byte, e blobEntry, inPlace bool) ([]byte, error) {
	payload, err := r.crypt.openBlob(sealed, e.Type, e.Flags, e.ID, inPlace)
	if err != nil {
		return nil, err
	}
	data, err := decompress(payload, e.Flags, e.RawLength)
	if err != nil {
		return nil, err
	}
	if got := Hash(data); got != e.ID {
		return nil, fmt.Errorf("content hashes to %s: %w", got.Short(), ErrCorrupt)
	}
	return data, nil
}

// Flush uploads the packs being filled, waits for all uploads and writes
// an index file for every pack this process uploaded (and, while it holds
// a lock, for packs found without an index). After Flush returns nil,
// every blob SaveBlob accepted is durable and indexed. It returns the
// first error any background upload met.
func (r *Repository) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if err := r.uploadAll(ctx); err != nil {
		return err
	}
	return r.writePendingIndex(ctx)
}

// uploadAll uploads every partly filled pack and waits for all uploads.
func (r *Repository) uploadAll(ctx context.Context) error {
	var owned []*packer
	defer func() {
		for _, p := range owned {
			r.returnPacker(p)
		}
	}()
	// Taking every packer out of its pool waits for the uploads that hold
	// them.
	for _, t := range []BlobType{DataBlob, TreeBlob} {
		for range r.pools[t].size() {
			p, err := r.takePacker(ctx, t)
			if err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			owned = append(owned, p)
		}
	}
	var wg sync.WaitGroup
	for _, p := range owned {
		if len(p.entries) == 0 {
			continue
		}
		wg.Add(1)
		r.uploadSem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-r.uploadSem }()
			r.upload(ctx, p)
		}()
	}
	wg.Wait()
	r.uploads.Wait()
	return nil
}

// writePendingIndex writes one index file for the packs this process
// uploaded and, when it holds a lock (so no prune is removing packs), for
// packs that were found without an index. It returns the sticky error of a
// failed upload, if any, and clears it: the blobs of that pack were
// forgotten and the next save stores them again.
func (r *Repository) writePendingIndex(ctx context.Context) error {
	r.mu.Lock()
	failed := r.err
	r.err = nil
	packs := r.unindexed
	r.unindexed = nil
	seen := make(map[ID]bool)
	for _, p := range packs {
		seen[p.ID] = true
	}
	if len(r.held) > 0 {
		for id := range r.idx.unindexed {
			if !seen[id] {
				packs = append(packs, r.idx.packs[id])
			}
		}
	}
	r.mu.Unlock()
	var err error
	if len(packs) > 0 {
		err = r.indexPacks(ctx, packs)
		if err != nil {
			r.mu.Lock()
			r.err = nil // reported here; the packs stay listed for the next Flush
			r.mu.Unlock()
		}
	}
	if failed != nil {
		return fmt.Errorf("flush: %w", errors.Join(failed, err))
	}
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
