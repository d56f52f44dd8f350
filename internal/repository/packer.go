package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// packer fills one pack in memory. Packers live in a per-type pool whose
// size bounds the memory held by packs being filled and uploaded.
type packer struct {
	t       BlobType
	buf     []byte
	entries []blobEntry
}

func (p *packer) reset() {
	p.buf = p.buf[:0]
	p.entries = p.entries[:0]
}

// addSealed appends one sealed blob produced by seal (which appends to its
// argument). A data packer's buffer is allocated once, big enough for a
// full pack and the chunk that tips it over, so filling a pack never
// copies it; tree packs are small and start small.
func (p *packer) addSealed(e blobEntry, seal func([]byte) []byte, packSize int) {
	if p.buf == nil {
		size := packSize + 2<<20
		if p.t == TreeBlob {
			size = 256 << 10
		}
		p.buf = make([]byte, 0, size)
	}
	start := len(p.buf)
	p.buf = seal(p.buf)
	e.Offset = uint32(start)
	e.Length = uint32(len(p.buf) - start)
	p.entries = append(p.entries, e)
}

// packerPool hands out packers last-in first-out, so that a single
// goroutine saving blobs one after the other fills one pack at a time
// (a file's chunks stay together) while concurrent savers each get one.
type packerPool struct {
	avail chan struct{} // one token per free packer
	mu    sync.Mutex
	free  []*packer
}

func newPackerPool(t BlobType, n int) *packerPool {
	p := &packerPool{avail: make(chan struct{}, n)}
	for range n {
		p.put(&packer{t: t})
	}
	return p
}

func (p *packerPool) size() int { return cap(p.avail) }

func (p *packerPool) put(pk *packer) {
	p.mu.Lock()
	p.free = append(p.free, pk)
	p.mu.Unlock()
	p.avail <- struct{}{}
}

func (p *packerPool) take(ctx context.Context) (*packer, error) {
	select {
	case <-p.avail:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pk := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return pk, nil
}

// takePacker waits for a free packer of type t.
func (r *Repository) takePacker(ctx context.Context, t BlobType) (*packer, error) {
	return r.pools[t].take(ctx)
}

func (r *Repository) returnPacker(p *packer) { r.pools[p.t].put(p) }

// dispatch sends a full packer to a background upload; it waits while
// Uploads uploads are running, which slows savers down to the speed of
// the backend. The packer returns to its pool when the upload is done.
func (r *Repository) dispatch(ctx context.Context, p *packer) {
	select {
	case r.uploadSem <- struct{}{}:
	case <-ctx.Done():
		r.fail(p, fmt.Errorf("upload pack: %w", ctx.Err()))
		r.returnPacker(p)
		return
	}
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		// The caller's context may end as soon as SaveBlob returns (an
		// errgroup's does): the upload of blobs already accepted must
		// not die with it.
		r.upload(context.WithoutCancel(ctx), p)
		<-r.uploadSem
		r.returnPacker(p)
	}()
}

// fail records err as the repository's sticky error and forgets the
// packer's blobs, which will never be stored.
func (r *Repository) fail(p *packer, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range p.entries {
		delete(r.pending, e.key())
	}
	if r.err == nil {
		r.err = err
	}
	p.reset()
}

// upload finishes a pack (trailer), stores it under the hash of its bytes
// and moves its blobs from pending to the index. Every IndexEvery packs it
// writes an index file, so a backup killed later leaves these packs
// indexed. The packer is reset either way.
func (r *Repository) upload(ctx context.Context, p *packer) error {
	if len(p.entries) == 0 {
		return nil
	}
	p.buf = r.crypt.sealTrailer(p.buf, p.entries)
	id := Hash(p.buf)
	err := saveBytes(ctx, r.be, backend.Handle{Type: backend.PackFile, Name: id.String()}, p.buf)
	if err != nil && !errors.Is(err, backend.ErrExists) {
		err = fmt.Errorf("upload pack %s: %w", id.Short(), err)
		r.fail(p, err)
		return err
	}
	rec := &packRecord{ID: id, Size: uint32(len(p.buf)), Blobs: append([]blobEntry(nil), p.entries...)}
	r.mu.Lock()
	r.idx.addPack(rec)
	for _, e := range p.entries {
		delete(r.pending, e.key())
	}
	r.unindexed = append(r.unindexed, rec)
	var toIndex []*packRecord
	if r.autoIndex && len(r.unindexed) >= r.opts.IndexEvery {
		toIndex, r.unindexed = r.unindexed, nil
	}
	r.mu.Unlock()
	p.reset()
	if toIndex != nil {
		return r.indexPacks(ctx, toIndex)
	}
	return nil
}

// indexPacks writes an index file for packs; on failure they go back to
// the unindexed list (they stay recoverable from their trailers) and the
// error becomes sticky.
func (r *Repository) indexPacks(ctx context.Context, packs []*packRecord) error {
	name, err := r.writeIndexFile(ctx, packs)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.unindexed = append(r.unindexed, packs...)
		if r.err == nil {
			r.err = err
		}
		return err
	}
	r.idx.files[name] = true
	for _, p := range packs {
		delete(r.idx.unindexed, p.ID)
	}
	return nil
}
