package archiver

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/bulwark-ml/bulwark/internal/chunking"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// The pipeline reads files, cuts them into chunks and stores the chunks.
// Readers (a few files at once) cut chunks; workers hash chunks and save
// them, so one large model file still keeps every core busy; a hasher per
// file hashes the whole file from the same chunks, in order, off the
// reader (which is the pipeline's one sequential step). Chunks in flight are copies in a fixed set
// of buffers of the largest chunk size, allocated once: peak memory is
// that set plus the repository's open packs, whatever the size of the
// data set.

// fileJob is one file to read; workers fill content, the reader the rest.
type fileJob struct {
	e       entry
	mu      sync.Mutex
	content []repository.ID
	pending sync.WaitGroup
	size    int64
	hash    repository.ID
}

type chunkJob struct {
	f    *fileJob
	idx  int
	data []byte        // a view of one of the pipeline's buffers
	refs *atomic.Int32 // the worker and the file's hasher: the last one frees the buffer
}

// counters are the pipeline's progress, read by the progress ticker.
type counters struct {
	filesDone, bytesDone atomic.Int64
	newBlobs, newBytes   atomic.Int64
}

type pipeline struct {
	repo    *repository.Repository
	chunker chunking.Options
	free    chan []byte // buffers not holding a chunk
	chunks  chan chunkJob
	count   *counters

	errOnce sync.Once
	err     error
	cancel  context.CancelFunc
}

// fail records the first error and stops the pipeline.
func (p *pipeline) fail(err error) {
	p.errOnce.Do(func() {
		p.err = err
		p.cancel()
	})
}

// run stores every file's content, filling each job's content, size and
// hash. readers files are read at once, workers chunks saved at once, and
// budget bytes of chunks are held at most (at least two chunks of the
// largest size per reader).
func (p *pipeline) run(ctx context.Context, jobs []*fileJob, readers, workers int, budget int64) error {
	ctx, p.cancel = context.WithCancel(ctx)
	defer p.cancel()
	size := p.chunker.Max
	n := max(int(budget/int64(size)), 2*readers)
	p.free = make(chan []byte, n)
	for range n {
		p.free <- make([]byte, 0, size)
	}
	p.chunks = make(chan chunkJob, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range p.chunks {
				// After a failure the rest is drained, not saved, so that
				// readers waiting on their files' chunks return.
				if ctx.Err() == nil {
					if err := p.save(ctx, c); err != nil {
						p.fail(err)
					}
				}
				p.release(c)
				c.f.pending.Done()
			}
		})
	}
	files := make(chan *fileJob)
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for f := range files {
				if ctx.Err() != nil {
					continue
				}
				if err := p.readFile(ctx, f); err != nil {
					p.fail(err)
				}
			}
		})
	}
	for _, f := range jobs {
		files <- f
	}
	close(files)
	rg.Wait()
	close(p.chunks)
	wg.Wait()
	if p.err != nil {
		return p.err
	}
	return ctx.Err()
}

// release frees a chunk's buffer once both its users are done with it.
func (p *pipeline) release(c chunkJob) {
	if c.refs.Add(-1) == 0 {
		p.free <- c.data[:0]
	}
}

func (p *pipeline) save(ctx context.Context, c chunkJob) error {
	data := c.data
	id := repository.Hash(data)
	stored, err := p.repo.SaveBlobWithID(ctx, repository.DataBlob, id, data)
	if err != nil {
		return fmt.Errorf("save chunk %d of %s: %w", c.idx, c.f.e.rel, err)
	}
	if stored {
		p.count.newBlobs.Add(1)
		p.count.newBytes.Add(int64(len(data)))
	}
	p.count.bytesDone.Add(int64(len(data)))
	c.f.mu.Lock()
	c.f.content[c.idx] = id
	c.f.mu.Unlock()
	return nil
}

// errChanged: a file changed while it was read; it is read again.
var errChanged = errors.New("changed while being read")

// readFile reads f, retrying a few times if it changes meanwhile (a
// configuration file rewritten in place during a hot backup).
func (p *pipeline) readFile(ctx context.Context, f *fileJob) error {
	const attempts = 3
	for i := 1; ; i++ {
		n, err := p.readOnce(ctx, f)
		if !errors.Is(err, errChanged) || i == attempts {
			if err == nil {
				p.count.filesDone.Add(1)
			}
			return err
		}
		// The chunks of the changed read are stored already; they are
		// not part of the snapshot and prune removes them later.
		p.count.bytesDone.Add(-n)
	}
}

// readOnce reads f once and returns the bytes it handed to the workers.
func (p *pipeline) readOnce(ctx context.Context, f *fileJob) (n int64, err error) {
	fd, err := os.Open(f.e.abs)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", f.e.rel, err)
	}
	defer fd.Close()
	before, err := fd.Stat()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", f.e.rel, err)
	}
	bounds, err := chunking.Boundaries(fd, before.Size(), f.e.info.Name())
	if err != nil {
		bounds = nil // an unrecognised model layout: plain content-defined chunks
	}
	f.content = f.content[:0]
	// The file's hasher gets every chunk in order; its channel holds as
	// many as there are buffers, so the reader never waits for it.
	hashed := make(chan chunkJob, cap(p.free))
	sum := make(chan repository.ID, 1)
	go func() {
		h := repository.NewHasher()
		for c := range hashed {
			h.Write(c.data)
			p.release(c)
		}
		sum <- sumOf(h)
	}()
	// Whatever happens, the reader returns only once the workers and the
	// hasher are done with its chunks, so f is not touched after.
	defer f.pending.Wait()
	n, err = p.emit(ctx, f, fd, bounds, hashed)
	close(hashed)
	whole := <-sum
	if err != nil {
		return n, err
	}
	f.pending.Wait()
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	after, err := fd.Stat()
	if err != nil {
		return n, fmt.Errorf("read %s: %w", f.e.rel, err)
	}
	if n != before.Size() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return n, fmt.Errorf("%s: %w", f.e.rel, errChanged)
	}
	f.size = n
	f.hash = whole
	f.e.info = after
	return n, nil
}

// emit cuts r into chunks and hands each to the workers and to the file's
// hasher.
func (p *pipeline) emit(ctx context.Context, f *fileJob, r io.Reader, bounds []int64, hashed chan<- chunkJob) (int64, error) {
	c := chunking.New(r, bounds, p.chunker)
	var n int64
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", f.e.rel, err)
		}
		var buf []byte
		select {
		case buf = <-p.free:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		buf = append(buf, chunk...)
		f.mu.Lock()
		f.content = append(f.content, repository.ID{})
		idx := len(f.content) - 1
		f.mu.Unlock()
		f.pending.Add(1)
		c := chunkJob{f: f, idx: idx, data: buf, refs: new(atomic.Int32)}
		c.refs.Store(2)
		hashed <- c
		p.chunks <- c
		n += int64(len(chunk))
	}
}

func sumOf(h hash.Hash) repository.ID {
	var id repository.ID
	copy(id[:], h.Sum(nil))
	return id
}
