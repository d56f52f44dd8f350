package repository

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// fileProblem is a stored file that could not be used.
type fileProblem struct {
	h   backend.Handle
	err error
}

// indexLoad is a freshly built index and what went wrong building it.
type indexLoad struct {
	idx *index
	// packSizes are the pack files the backend lists, by name.
	packSizes map[string]int64
	// indexFiles are the index files listed, by name, whether readable
	// or not.
	indexFiles map[string]int64
	problems   []fileProblem
	// damaged are packs an index lists that the backend does not have,
	// or has with another size. Of a pack shorter than indexed, idx keeps
	// the blobs that lie within the stored bytes (they may well be
	// intact; reads authenticate them); the others are not in idx, so
	// nothing is deduplicated against them and the next backup stores
	// them again.
	damaged []damagedPack
}

type damagedPack struct {
	rec        *packRecord // as the index lists it
	storedSize int64       // -1: missing
}

func (d damagedPack) String() string {
	if d.storedSize < 0 {
		return "pack is missing"
	}
	return fmt.Sprintf("pack has %d bytes, the index says %d", d.storedSize, d.rec.Size)
}

// lost reports whether blob e of the pack is not stored in full.
func (d damagedPack) lost(e blobEntry) bool {
	return d.storedSize < 0 || int64(e.Offset)+int64(e.Length) > d.storedSize
}

// loadIndex reads every index file, then lists the packs and reads the
// trailer of every pack no index file mentions (a backup that died before
// writing its index), so their blobs are known too. Packs an index lists
// but the backend lacks, or has with the wrong size, are left out so that
// nothing is deduplicated against them.
func (r *Repository) loadIndex(ctx context.Context) (*indexLoad, error) {
	res := &indexLoad{idx: newIndex()}
	var err error
	if res.indexFiles, err = listNames(ctx, r.be, backend.IndexFile); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(res.indexFiles))
	for name := range res.indexFiles {
		names = append(names, name)
	}
	type loaded struct {
		name  string
		packs []*packRecord
		err   error
	}
	results := make([]loaded, len(names))
	parallel(ctx, len(names), 4, func(i int) {
		packs, err := r.readIndexFile(ctx, names[i])
		results[i] = loaded{names[i], packs, err}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	listed := make(map[ID]*packRecord)
	for _, l := range results {
		if l.err != nil {
			if errors.Is(l.err, ErrUnsupportedFormat) {
				return nil, l.err
			}
			res.problems = append(res.problems, fileProblem{backend.Handle{Type: backend.IndexFile, Name: l.name}, l.err})
			continue
		}
		res.idx.files[l.name] = true
		for _, p := range l.packs {
			if _, ok := listed[p.ID]; !ok {
				listed[p.ID] = p
			}
		}
	}
	if res.packSizes, err = listNames(ctx, r.be, backend.PackFile); err != nil {
		return nil, err
	}
	for id, p := range listed {
		size, ok := res.packSizes[id.String()]
		if !ok {
			res.damaged = append(res.damaged, damagedPack{p, -1})
			continue
		}
		if size != int64(p.Size) {
			d := damagedPack{p, size}
			res.damaged = append(res.damaged, d)
			kept := &packRecord{ID: p.ID, Size: p.Size}
			for _, e := range p.Blobs {
				if !d.lost(e) {
					kept.Blobs = append(kept.Blobs, e)
				}
			}
			res.idx.addPack(kept)
			continue
		}
		res.idx.addPack(p)
	}
	var orphans []string
	for name := range res.packSizes {
		id, err := ParseID(name)
		if err != nil {
			res.problems = append(res.problems, fileProblem{backend.Handle{Type: backend.PackFile, Name: name}, fmt.Errorf("pack name is not an id: %w", ErrCorrupt)})
			continue
		}
		if _, ok := listed[id]; !ok {
			orphans = append(orphans, name)
		}
	}
	recovered := make([]*packRecord, len(orphans))
	errs := make([]error, len(orphans))
	parallel(ctx, len(orphans), 4, func(i int) {
		recovered[i], errs[i] = r.scanPack(ctx, orphans[i], res.packSizes[orphans[i]])
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, p := range recovered {
		if errs[i] != nil {
			res.problems = append(res.problems, fileProblem{backend.Handle{Type: backend.PackFile, Name: orphans[i]}, fmt.Errorf("pack in no index, trailer unreadable: %w", errs[i])})
			continue
		}
		res.idx.addPack(p)
		res.idx.unindexed[p.ID] = true
	}
	return res, nil
}

// readIndexFile loads, verifies (name = hash of content) and decodes one
// index file.
func (r *Repository) readIndexFile(ctx context.Context, name string) ([]*packRecord, error) {
	h := backend.Handle{Type: backend.IndexFile, Name: name}
	data, err := loadFile(ctx, r.be, h, maxIndexFileSize)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", name, err)
	}
	if got := Hash(data).String(); got != name {
		return nil, fmt.Errorf("index %s: content hashes to %s: %w", name, got, ErrCorrupt)
	}
	plain, err := r.crypt.openObject(kindIndex, data)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", name, err)
	}
	packs, err := decodeIndex(plain)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", name, err)
	}
	return packs, nil
}

// scanPack reads the blob list from a pack's trailer.
func (r *Repository) scanPack(ctx context.Context, name string, size int64) (*packRecord, error) {
	id, err := ParseID(name)
	if err != nil {
		return nil, err
	}
	if size > 1<<32-1 {
		return nil, fmt.Errorf("pack %s of %d bytes: %w", name, size, ErrCorrupt)
	}
	h := backend.Handle{Type: backend.PackFile, Name: name}
	readLen := min(size, packTailRead)
	tail, err := loadRange(ctx, r.be, h, size-readLen, readLen)
	if err != nil {
		return nil, fmt.Errorf("read pack %s trailer: %w", name, err)
	}
	if n, err := trailerLength(tail, size); err == nil && n+4 > readLen {
		if tail, err = loadRange(ctx, r.be, h, size-n-4, n+4); err != nil {
			return nil, fmt.Errorf("read pack %s trailer: %w", name, err)
		}
	}
	entries, err := r.crypt.parsePackTail(tail, size)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	return &packRecord{ID: id, Size: uint32(size), Blobs: entries}, nil
}

// writeIndexFile stores an index file listing packs and returns its name.
func (r *Repository) writeIndexFile(ctx context.Context, packs []*packRecord) (string, error) {
	data := r.crypt.sealObject(kindIndex, encodeIndex(packs))
	name := Hash(data).String()
	err := saveBytes(ctx, r.be, backend.Handle{Type: backend.IndexFile, Name: name}, data)
	if err != nil && !errors.Is(err, backend.ErrExists) {
		return "", fmt.Errorf("write index: %w", err)
	}
	return name, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines, stopping early
// when ctx is done.
func parallel(ctx context.Context, n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
loop:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
}
