package repository

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Progress reports how far a long operation is.
type Progress struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit"` // "bytes", "packs", "blobs" or "files"
}

// CheckOptions choose how deep Check looks. With ReadData, or a Subset
// above zero, packs are downloaded and every blob in them authenticated,
// decompressed and hash-checked; Subset (0 < Subset <= 1) picks that
// share of the packs at random, 0 means all.
type CheckOptions struct {
	ReadData bool    `json:"read_data"`
	Subset   float64 `json:"subset,omitempty"`
}

// CheckReport is what Check found. A clean repository has no problems;
// unindexed packs (left by a killed backup or prune) are not problems:
// their blobs are recovered from their trailers.
type CheckReport struct {
	Packs          int       `json:"packs"`
	Blobs          int       `json:"blobs"`
	Snapshots      int       `json:"snapshots"`
	ReadPacks      int       `json:"read_packs"`
	UnindexedPacks int       `json:"unindexed_packs"`
	Problems       []Problem `json:"problems"`
}

// Problem is one damaged file, pack or blob and what it affects: the
// snapshots that need it and, in them, the file paths.
type Problem struct {
	Pack      string   `json:"pack,omitempty"`
	Blob      *ID      `json:"blob,omitempty"`
	Err       string   `json:"error"`
	Snapshots []ID     `json:"snapshots,omitempty"`
	Files     []string `json:"files,omitempty"`
}

// checker collects problems and which blobs each one covers.
type checker struct {
	r        *Repository
	mu       sync.Mutex
	problems []*Problem
	// covers maps a damaged blob to the problems it belongs to.
	covers map[blobKey][]*Problem
}

func (c *checker) add(p *Problem, blobs ...blobKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, p)
	for _, k := range blobs {
		c.covers[k] = append(c.covers[k], p)
	}
}

func blobProblem(pack ID, e blobEntry, err error) *Problem {
	id := e.ID
	return &Problem{Pack: pack.String(), Blob: &id, Err: fmt.Sprintf("%s: %v", e.key(), err)}
}

// Check verifies the repository under a shared lock: every index entry's
// pack exists with the right size, every pack without an index has a
// readable trailer, every snapshot loads and its tree and content blobs
// are indexed; with ReadData it also reads packs (see CheckOptions). Each
// problem names the pack and blob and the snapshots and files it affects.
// The error is for failures to run the check at all (lock, listing).
func (r *Repository) Check(ctx context.Context, opts CheckOptions, progress func(Progress)) (*CheckReport, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))

	progress(Progress{Phase: "index", Unit: "files"})
	res, err := r.loadIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	r.useIndex(res)
	c := &checker{r: r, covers: make(map[blobKey][]*Problem)}
	report := &CheckReport{Packs: len(res.idx.packs), Blobs: len(res.idx.blobs), UnindexedPacks: len(res.idx.unindexed)}
	for _, fp := range res.problems {
		p := &Problem{Err: fmt.Sprintf("%s: %v", fp.h, fp.err)}
		if fp.h.Type == backend.PackFile {
			p.Pack = fp.h.Name
		}
		c.add(p)
	}
	for _, d := range res.damaged {
		var lost []blobKey
		for _, e := range d.rec.Blobs {
			if d.lost(e) {
				lost = append(lost, e.key())
			}
		}
		c.add(&Problem{Pack: d.rec.ID.String(), Err: fmt.Sprintf("%s; %d of its %d blobs are lost", d, len(lost), len(d.rec.Blobs))}, lost...)
	}

	if opts.ReadData || opts.Subset > 0 {
		packs := choosePacks(res.idx.sortedPacks(), opts.Subset)
		report.ReadPacks = len(packs)
		c.readPacks(ctx, packs, progress)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
	}

	n, err := c.walkSnapshots(ctx, progress)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	report.Snapshots = n
	report.Problems = make([]Problem, 0, len(c.problems))
	for _, p := range c.problems {
		slices.SortFunc(p.Snapshots, ID.Compare)
		p.Snapshots = slices.Compact(p.Snapshots)
		slices.Sort(p.Files)
		p.Files = slices.Compact(p.Files)
		report.Problems = append(report.Problems, *p)
	}
	return report, nil
}

// choosePacks picks share (0 or 1: all) of the packs at random.
func choosePacks(packs []*packRecord, share float64) []*packRecord {
	if share <= 0 || share >= 1 {
		return packs
	}
	n := int(math.Ceil(share * float64(len(packs))))
	rand.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
	chosen := packs[:n]
	slices.SortFunc(chosen, func(a, b *packRecord) int { return a.ID.Compare(b.ID) })
	return chosen
}

func (c *checker) readPacks(ctx context.Context, packs []*packRecord, progress func(Progress)) {
	var total int64
	for _, p := range packs {
		total += int64(p.Size)
	}
	var mu sync.Mutex
	var done int64
	progress(Progress{Phase: "read data", Total: total, Unit: "bytes"})
	parallel(ctx, len(packs), 2, func(i int) {
		c.readPack(ctx, packs[i])
		mu.Lock()
		done += int64(packs[i].Size)
		progress(Progress{Phase: "read data", Done: done, Total: total, Unit: "bytes"})
		mu.Unlock()
	})
}

// readPack downloads one pack and checks its name (hash of its bytes),
// its trailer against the index, and every indexed blob in it.
func (c *checker) readPack(ctx context.Context, p *packRecord) {
	name := p.ID.String()
	data, err := loadFile(ctx, c.r.be, backend.Handle{Type: backend.PackFile, Name: name}, int64(p.Size)+(1<<20))
	if err != nil {
		if ctx.Err() == nil {
			keys := make([]blobKey, len(p.Blobs))
			for i, e := range p.Blobs {
				keys[i] = e.key()
			}
			c.add(&Problem{Pack: name, Err: fmt.Sprintf("read pack: %v", err)}, keys...)
		}
		return
	}
	if got := Hash(data); got != p.ID {
		c.add(&Problem{Pack: name, Err: fmt.Sprintf("pack content hashes to %s: the pack is damaged", got.Short())})
	}
	trailer, err := c.r.crypt.parsePackTail(data, int64(len(data)))
	if err != nil {
		c.add(&Problem{Pack: name, Err: fmt.Sprintf("trailer: %v", err)})
	} else if !slices.Equal(sortedEntries(trailer), sortedEntries(p.Blobs)) {
		c.add(&Problem{Pack: name, Err: "trailer and index list different blobs"})
	}
	for _, e := range p.Blobs {
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(data)) {
			c.add(blobProblem(p.ID, e, fmt.Errorf("beyond the end of the pack")), e.key())
			continue
		}
		if _, err := c.r.openBlob(data[e.Offset:end], e, true); err != nil {
			c.add(blobProblem(p.ID, e, err), e.key())
		}
	}
}

func sortedEntries(es []blobEntry) []blobEntry {
	out := slices.Clone(es)
	slices.SortFunc(out, func(a, b blobEntry) int { return int(a.Offset) - int(b.Offset) })
	return out
}

// walkSnapshots loads every snapshot and tree, reports what cannot be
// loaded or is not indexed, and attributes every damaged blob to the
// snapshots and files that use it.
func (c *checker) walkSnapshots(ctx context.Context, progress func(Progress)) (int, error) {
	ids, err := c.r.snapshotIDs(ctx)
	if err != nil {
		return 0, err
	}
	missing := make(map[blobKey]*Problem)
	attribute := func(k blobKey, snap ID, file string) bool {
		ps := c.covers[k]
		if p, ok := missing[k]; ok {
			ps = append(ps, p)
		}
		for _, p := range ps {
			p.Snapshots = append(p.Snapshots, snap)
			if file != "" {
				p.Files = append(p.Files, file)
			}
		}
		return len(ps) > 0
	}
	notIndexed := func(k blobKey, snap ID, file string) {
		if _, ok := c.r.lookup(k); ok || len(c.covers[k]) > 0 || missing[k] != nil {
			return
		}
		p := &Problem{Blob: &k.id, Err: fmt.Sprintf("%s is not in the index", k)}
		missing[k] = p
		c.problems = append(c.problems, p)
	}
	for i, id := range ids {
		progress(Progress{Phase: "snapshots", Done: int64(i), Total: int64(len(ids)), Unit: "files"})
		s, err := c.r.LoadSnapshot(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			c.problems = append(c.problems, &Problem{Err: err.Error(), Snapshots: []ID{id}})
			continue
		}
		tk := blobKey{TreeBlob, s.Tree}
		notIndexed(tk, id, "")
		if attribute(tk, id, "") {
			continue // the tree is damaged or missing: the whole snapshot is affected
		}
		tree, err := c.r.LoadTree(ctx, s.Tree)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			treeID := s.Tree
			p := &Problem{Blob: &treeID, Err: err.Error(), Snapshots: []ID{id}}
			if loc, ok := c.r.lookup(tk); ok {
				p.Pack = loc.pack.ID.String()
			}
			c.problems = append(c.problems, p)
			continue
		}
		for _, n := range tree.Nodes {
			for _, b := range n.Content {
				k := blobKey{DataBlob, b}
				notIndexed(k, id, n.Path)
				attribute(k, id, n.Path)
			}
		}
	}
	progress(Progress{Phase: "snapshots", Done: int64(len(ids)), Total: int64(len(ids)), Unit: "files"})
	return len(ids), nil
}

func (r *Repository) lookup(k blobKey) (blobLoc, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idx.lookup(k)
}
