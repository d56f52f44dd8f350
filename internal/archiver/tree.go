package archiver

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/progress"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/state"
)

// builder turns the site's entries into a tree, storing what it must read.
type builder struct {
	repo   *repository.Repository
	opts   *Options
	parent map[string]*repository.Node
	count  counters
	files  int
	bytes  int64
}

// loadParent indexes the parent snapshot's files by path.
func (b *builder) loadParent(ctx context.Context) error {
	if b.opts.Parent == nil {
		return nil
	}
	t, err := b.repo.LoadTree(ctx, b.opts.Parent.Tree)
	if err != nil {
		return fmt.Errorf("load the tree of parent snapshot %s: %w", b.opts.Parent.ID, err)
	}
	for i := range t.Nodes {
		b.parent[t.Nodes[i].Path] = &t.Nodes[i]
	}
	return nil
}

// reusable returns the parent's node for a file that has not changed since
// (same size, modification time and inode, and every blob still stored),
// so it need not be read.
func (b *builder) reusable(e *entry) *repository.Node {
	p := b.parent[e.rel]
	if p == nil || p.Type != "file" || p.Size != e.info.Size() || !p.ModTime.Equal(e.info.ModTime()) || p.Hash == nil {
		return nil
	}
	if !sameInode(p, e) || (p.Size > 0 && len(p.Content) == 0) {
		return nil
	}
	for _, id := range p.Content {
		if !b.repo.HasBlob(repository.DataBlob, id) {
			return nil
		}
	}
	return p
}

// build makes the tree of entries, reading and storing the files that the
// parent does not already describe.
func (b *builder) build(ctx context.Context, entries []entry) (*repository.Tree, error) {
	slices.SortFunc(entries, func(x, y entry) int { return strings.Compare(x.rel, y.rel) })
	nodes := make([]repository.Node, len(entries))
	jobs := map[int]*fileJob{}
	var order []*fileJob
	var total, reused int64
	for i := range entries {
		e := &entries[i]
		n := &nodes[i]
		*n = repository.Node{Path: e.rel, Mode: uint32(e.info.Mode().Perm()), ModTime: e.info.ModTime().UTC(), Inode: inodeOf(e.info)}
		switch {
		case e.info.IsDir():
			n.Type = "dir"
		case e.info.Mode()&fs.ModeSymlink != 0:
			n.Type = "symlink"
			target, err := os.Readlink(e.abs)
			if err != nil {
				return nil, fmt.Errorf("read symlink %s: %w", e.rel, err)
			}
			if why := leavesSite(e.rel, target); why != "" {
				// A restore refuses links out of the target, so the
				// repository refuses to store them.
				b.opts.Logger.Warn("skipped a symlink", "path", e.rel, "target", target, "why", why)
				n.Type = ""
				continue
			}
			n.Target = target
		default:
			n.Type = "file"
			n.Size = e.info.Size()
			total += n.Size
			b.files++
			if p := b.reusable(e); p != nil {
				n.Content, n.Hash = p.Content, p.Hash
				reused += n.Size
				continue
			}
			f := &fileJob{e: *e}
			jobs[i] = f
			order = append(order, f)
		}
	}
	b.count.bytesDone.Store(reused)
	b.count.filesDone.Store(int64(b.files - len(order)))
	stop := b.report(int64(b.files), total)
	p := &pipeline{repo: b.repo, chunker: b.opts.Chunking, count: &b.count}
	err := p.run(ctx, order, b.opts.Readers, b.opts.Workers, b.opts.Budget)
	stop()
	if err != nil {
		return nil, err
	}
	for i, f := range jobs {
		n := &nodes[i]
		h := f.hash
		n.Size, n.Hash, n.Content = f.size, &h, slices.Clip(f.content)
		n.ModTime, n.Mode = f.e.info.ModTime().UTC(), uint32(f.e.info.Mode().Perm())
	}
	kept := nodes[:0]
	for _, n := range nodes {
		if n.Type != "" {
			kept = append(kept, n)
			b.bytes += n.Size
		}
	}
	return &repository.Tree{Nodes: kept}, nil
}

// leavesSite says why a symlink at rel pointing to target leads out of the
// site ("" if it stays inside).
func leavesSite(rel, target string) string {
	if path.IsAbs(target) {
		return "absolute target"
	}
	if p := path.Join(path.Dir(rel), target); p == ".." || strings.HasPrefix(p, "../") {
		return "target outside the site"
	}
	return ""
}

// report calls the progress callback until the returned stop is called,
// then once more.
func (b *builder) report(files, bytes int64) (stop func()) {
	if b.opts.Progress == nil {
		return func() {}
	}
	snapshot := func() Progress {
		return Progress{FilesDone: b.count.filesDone.Load(), FilesTotal: files,
			BytesDone: b.count.bytesDone.Load(), BytesTotal: bytes, NewBytes: b.count.newBytes.Load()}
	}
	return progress.Every(b.opts.ProgressInterval, b.opts.Progress, snapshot)
}

// describeState summarises a state copy for the snapshot's Meta.
func describeState(ctx context.Context, path string) (*control.StateSummary, error) {
	st, err := state.OpenBoltReadOnly(path, time.Second)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return control.DescribeState(ctx, st)
}
