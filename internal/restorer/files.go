package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bulwark-ml/bulwark/internal/progress"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// fatalError stops the whole restore (the target cannot be written);
// other errors fail only their file.
type fatalError struct{ error }

func (f fatalError) Unwrap() error { return f.error }

// restoreFiles writes files with opts.Workers at once. The first fatal
// error cancels the rest, which remove their temporary files.
func (r *restorer) restoreFiles(ctx context.Context, files []*repository.Node) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once  sync.Once
		fatal error
		wg    sync.WaitGroup
	)
	work := make(chan *repository.Node)
	for range r.opts.Workers {
		wg.Go(func() {
			for n := range work {
				if ctx.Err() != nil {
					continue
				}
				err := r.restoreFile(ctx, n)
				var fe fatalError
				switch {
				case err == nil:
					r.filesDone.Add(1)
				case errors.As(err, &fe) || ctx.Err() != nil:
					once.Do(func() { fatal = err; cancel() })
				default:
					r.fileFailed(n.Path, err)
				}
			}
		})
	}
	for _, n := range files {
		work <- n
	}
	close(work)
	wg.Wait()
	if fatal != nil {
		var fe fatalError
		if errors.As(fatal, &fe) {
			return fe.error
		}
		return fatal
	}
	return ctx.Err()
}

// tempFile is what restoreFile writes a file into.
type tempFile interface {
	Write(p []byte) (int, error)
	Fd() uintptr
	Chmod(mode os.FileMode) error
	Sync() error
	Close() error
	Name() string
}

// writebackEvery is how much of a file is written before the kernel is
// asked to start writing it to the disk.
const writebackEvery = 8 << 20

// newTempFile creates a file's temporary file in dir; tests replace it to
// simulate a full disk.
var newTempFile = func(dir string) (tempFile, error) {
	return os.CreateTemp(dir, ".bulwark-restore-*")
}

// loaded is one blob fetched ahead of its turn.
type loaded struct {
	data []byte
	err  error
}

// restoreFile writes one file atomically: temporary file, content checked
// against the snapshot's hash and size, synced, renamed into place.
func (r *restorer) restoreFile(ctx context.Context, n *repository.Node) (err error) {
	dir := path.Dir(n.Path)
	if err := r.ensureDir(dir); err != nil {
		return fatalError{err}
	}
	f, err := newTempFile(r.abs(dir))
	if err != nil {
		return fatalError{r.writeError("create "+n.Path, err)}
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	fetch := r.prefetch(ctx, n.Content)
	defer fetch.release()
	h := repository.NewHasher()
	var written, started int64
	for i := range n.Content {
		got, err := fetch.next(ctx)
		if err != nil {
			return err
		}
		if got.err != nil {
			return fmt.Errorf("%s: blob %d of %d (%s): %w", n.Path, i+1, len(n.Content), n.Content[i], got.err)
		}
		if _, err := f.Write(got.data); err != nil {
			return fatalError{r.writeError("write "+n.Path, err)}
		}
		h.Write(got.data)
		written += int64(len(got.data))
		r.bytesDone.Add(int64(len(got.data)))
		if written-started >= writebackEvery {
			startWriteback(f, started, written-started)
			started = written
		}
	}
	if written != n.Size {
		return fmt.Errorf("%s: restored %d bytes, the snapshot says %d: %w", n.Path, written, n.Size, repository.ErrCorrupt)
	}
	if n.Hash != nil {
		var sum repository.ID
		copy(sum[:], h.Sum(nil))
		if sum != *n.Hash {
			return fmt.Errorf("%s: content hash %s, the snapshot says %s: %w", n.Path, sum, *n.Hash, repository.ErrCorrupt)
		}
	}
	if err := f.Chmod(os.FileMode(n.Mode).Perm()); err != nil {
		return fatalError{r.writeError("chmod "+n.Path, err)}
	}
	if err := f.Sync(); err != nil {
		return fatalError{r.writeError("sync "+n.Path, err)}
	}
	if err := f.Close(); err != nil {
		return fatalError{r.writeError("close "+n.Path, err)}
	}
	if err := os.Chtimes(tmp, n.ModTime, n.ModTime); err != nil {
		return fatalError{r.writeError("set time of "+n.Path, err)}
	}
	if err := os.Rename(tmp, r.abs(n.Path)); err != nil {
		// A directory in the way is this file's problem, not the disk's.
		return fmt.Errorf("%s: put into place: %w", n.Path, err)
	}
	r.markDirty(dir)
	return nil
}

// fetcher loads a file's blobs in order, as many ahead as the restore's
// shared slots allow; each taken result frees its slot.
type fetcher struct {
	r        *restorer
	out      []chan loaded
	cancel   context.CancelFunc
	stopped  chan struct{}
	launched int // written by the launcher until stopped is closed
	taken    int
}

func (r *restorer) prefetch(ctx context.Context, ids []repository.ID) *fetcher {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{r: r, out: make([]chan loaded, len(ids)), cancel: cancel, stopped: make(chan struct{})}
	for i := range f.out {
		f.out[i] = make(chan loaded, 1)
	}
	go func() {
		defer close(f.stopped)
		for i, id := range ids {
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			f.launched++
			go func() {
				data, err := r.repo.LoadBlob(ctx, repository.DataBlob, id)
				f.out[i] <- loaded{data, err}
			}()
		}
	}()
	return f
}

// next waits for the next blob in order.
func (f *fetcher) next(ctx context.Context) (loaded, error) {
	select {
	case got := <-f.out[f.taken]:
		f.taken++
		<-f.r.slots
		return got, nil
	case <-ctx.Done():
		return loaded{}, ctx.Err()
	}
}

// release stops loading ahead and frees the slots of blobs loaded but not
// taken, so that a file failing half-way does not starve the others.
func (f *fetcher) release() {
	f.cancel()
	<-f.stopped
	for ; f.taken < f.launched; f.taken++ {
		<-f.out[f.taken]
		<-f.r.slots
	}
}

// report calls the progress callback until the returned stop is called,
// then once more.
func (r *restorer) report(files, bytes int64) (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	snapshot := func() Progress {
		return Progress{FilesDone: r.filesDone.Load(), FilesTotal: files, BytesDone: r.bytesDone.Load(), BytesTotal: bytes}
	}
	return progress.Every(r.opts.ProgressInterval, r.opts.Progress, snapshot)
}

// lchtimes sets a symlink's own times; failing is harmless (not every
// file system keeps them).
func lchtimes(p string, t time.Time) {
	tv := unix.NsecToTimeval(t.UnixNano())
	unix.Lutimes(filepath.Clean(p), []unix.Timeval{tv, tv})
}
