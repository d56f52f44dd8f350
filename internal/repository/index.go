package repository

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// An index file is an envelope (kind "index") whose plaintext lists packs
// and their blobs, little endian:
//
//	pack count u32
//	per pack: id [32]byte | size u32 | blob count u32 |
//	          blob count × (type u8, flags u8, offset u32, stored length u32, raw length u32, id [32]byte)
//
// Its name is the Hash of the file's bytes. Index files only ever add
// knowledge: any number may mention the same pack, and the union of all is
// the repository's index. Only prune removes index files, after writing
// the ones that replace them.

const (
	indexEntrySize   = 1 + 1 + 4 + 4 + 4 + 32
	indexPackHeader  = 32 + 4 + 4
	maxIndexFileSize = 256 << 20
	// indexFileBlobs is how many blobs prune puts in one index file
	// (about 9 MiB), so no single file grows without bound.
	indexFileBlobs = 200000
)

// packRecord is what the index knows of one pack.
type packRecord struct {
	ID    ID
	Size  uint32
	Blobs []blobEntry
}

func (p *packRecord) validate() error {
	if len(p.Blobs) > maxPackBlobs {
		return fmt.Errorf("pack %s lists %d blobs: %w", p.ID.Short(), len(p.Blobs), ErrCorrupt)
	}
	for _, e := range p.Blobs {
		if err := e.validate(); err != nil {
			return fmt.Errorf("pack %s: %w", p.ID.Short(), err)
		}
		if uint64(e.Offset)+uint64(e.Length) > uint64(p.Size) {
			return fmt.Errorf("pack %s: blob %s at %d+%d beyond the pack's %d bytes: %w", p.ID.Short(), e.ID.Short(), e.Offset, e.Length, p.Size, ErrCorrupt)
		}
	}
	return nil
}

func encodeIndex(packs []*packRecord) []byte {
	size := 4
	for _, p := range packs {
		size += indexPackHeader + len(p.Blobs)*indexEntrySize
	}
	out := make([]byte, 4, size)
	binary.LittleEndian.PutUint32(out, uint32(len(packs)))
	for _, p := range packs {
		out = append(out, p.ID[:]...)
		out = binary.LittleEndian.AppendUint32(out, p.Size)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p.Blobs)))
		for _, e := range p.Blobs {
			out = append(out, byte(e.Type), e.Flags)
			out = binary.LittleEndian.AppendUint32(out, e.Offset)
			out = binary.LittleEndian.AppendUint32(out, e.Length)
			out = binary.LittleEndian.AppendUint32(out, e.RawLength)
			out = append(out, e.ID[:]...)
		}
	}
	return out
}

func decodeIndex(plain []byte) ([]*packRecord, error) {
	if len(plain) < 4 {
		return nil, fmt.Errorf("index of %d bytes: %w", len(plain), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(plain)
	p := plain[4:]
	if uint64(n)*indexPackHeader > uint64(len(p)) {
		return nil, fmt.Errorf("index claims %d packs in %d bytes: %w", n, len(plain), ErrCorrupt)
	}
	packs := make([]*packRecord, 0, n)
	seen := make(map[ID]bool, n)
	for i := range n {
		if len(p) < indexPackHeader {
			return nil, fmt.Errorf("index truncated in pack %d: %w", i, ErrCorrupt)
		}
		rec := &packRecord{Size: binary.LittleEndian.Uint32(p[32:])}
		copy(rec.ID[:], p[:32])
		count := binary.LittleEndian.Uint32(p[36:])
		p = p[indexPackHeader:]
		if uint64(count)*indexEntrySize > uint64(len(p)) {
			return nil, fmt.Errorf("index pack %d claims %d blobs in %d bytes: %w", i, count, len(p), ErrCorrupt)
		}
		if seen[rec.ID] {
			return nil, fmt.Errorf("index lists pack %s twice: %w", rec.ID.Short(), ErrCorrupt)
		}
		seen[rec.ID] = true
		rec.Blobs = make([]blobEntry, count)
		for j := range rec.Blobs {
			e := blobEntry{Type: BlobType(p[0]), Flags: p[1]}
			e.Offset = binary.LittleEndian.Uint32(p[2:])
			e.Length = binary.LittleEndian.Uint32(p[6:])
			e.RawLength = binary.LittleEndian.Uint32(p[10:])
			copy(e.ID[:], p[14:46])
			rec.Blobs[j] = e
			p = p[indexEntrySize:]
		}
		if err := rec.validate(); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		packs = append(packs, rec)
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("index has %d bytes after its last pack: %w", len(p), ErrCorrupt)
	}
	return packs, nil
}

// blobLoc points at one blob of a pack.
type blobLoc struct {
	pack *packRecord
	i    int32
}

func (l blobLoc) entry() blobEntry { return l.pack.Blobs[l.i] }

// index is the in-memory union of index files, recovered packs and packs
// uploaded by this process. A blob stored in several packs (after a
// crashed prune, or two backups racing) is found at the first one added.
type index struct {
	packs map[ID]*packRecord
	blobs map[blobKey]blobLoc
	// files are the index files merged in; unindexed are packs known
	// here that no index file (of those merged) lists.
	files     map[string]bool
	unindexed map[ID]bool
}

func newIndex() *index {
	return &index{
		packs:     make(map[ID]*packRecord),
		blobs:     make(map[blobKey]blobLoc),
		files:     make(map[string]bool),
		unindexed: make(map[ID]bool),
	}
}

// addPack merges a pack's blobs; a pack already known keeps its record.
func (x *index) addPack(p *packRecord) {
	if _, ok := x.packs[p.ID]; ok {
		return
	}
	x.packs[p.ID] = p
	for i, e := range p.Blobs {
		k := e.key()
		if _, ok := x.blobs[k]; !ok {
			x.blobs[k] = blobLoc{pack: p, i: int32(i)}
		}
	}
}

func (x *index) lookup(k blobKey) (blobLoc, bool) {
	l, ok := x.blobs[k]
	return l, ok
}

// sortedPacks returns the packs ordered by id, for deterministic output.
func (x *index) sortedPacks() []*packRecord {
	out := make([]*packRecord, 0, len(x.packs))
	for _, p := range x.packs {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *packRecord) int { return a.ID.Compare(b.ID) })
	return out
}
