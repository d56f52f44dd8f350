package restorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// Errors a caller maps to exit codes.
var (
	// ErrIncomplete: some files could not be restored (their data is
	// damaged or missing); every other file was.
	ErrIncomplete = errors.New("restore incomplete")
	// ErrDiskFull: the target ran out of space; the restore stopped and
	// left no partial file.
	ErrDiskFull = errors.New("no space left on the target")
)

// Options describe one restore. Target is required.
type Options struct {
	Target string
	// Include selects the paths to restore (nil: all); the directories
	// above a selected path are created as needed.
	Include func(path string) bool
	// Workers is how many files are written at once (0: 4); Prefetch how
	// many blobs are loaded ahead over all files (0: 2×GOMAXPROCS+2).
	Workers, Prefetch int
	// Progress, when set, is called about every ProgressInterval (0:
	// 250ms) and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	Logger           *slog.Logger
}

// Progress is how far a restore is.
type Progress struct {
	FilesDone  int64 `json:"files_done"`
	FilesTotal int64 `json:"files_total"`
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// FileError is a file that could not be restored.
type FileError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// Result says what a restore did.
type Result struct {
	Files    int         `json:"files"`
	Dirs     int         `json:"dirs"`
	Symlinks int         `json:"symlinks"`
	Bytes    int64       `json:"bytes"`
	Failed   []FileError `json:"failed,omitempty"`
}

// restorer is one restore in progress.
type restorer struct {
	repo   *repository.Repository
	opts   Options
	target string
	slots  chan struct{} // blobs loaded ahead, over all files

	dirsMu   sync.Mutex
	verified map[string]bool // directories known to be real directories under target
	dirty    map[string]bool // directories whose entries changed: fsynced at the end

	filesDone, bytesDone atomic.Int64
	failMu               sync.Mutex
	failed               []FileError
	corrupt              bool
}

// Restore writes snapshot snap into opts.Target. The tree is validated
// first: hostile paths or symlinks leaving the target refuse the whole
// restore (ErrCorrupt). Files are written in parallel, each to a temporary
// file in its directory, checked against its content hash, synced and
// renamed into place; directories are synced at the end. A file whose data
// is damaged fails alone: the others are restored and the error (wrapping
// ErrIncomplete and repository.ErrCorrupt) lists it. A full disk stops the
// restore with ErrDiskFull and no partial file.
func Restore(ctx context.Context, repo *repository.Repository, snap *repository.Snapshot, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("restore: no target directory")
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, err
	}
	opts.defaults()
	// LoadTree validates the tree too; checking again here keeps the
	// restorer safe whatever the repository does.
	tree, err := repo.LoadTree(ctx, snap.Tree)
	if err == nil {
		err = tree.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s cannot be restored, its file list is damaged or unsafe; nothing was written: %w", snap.ID, err)
	}
	dirs, files, links := selectNodes(tree, opts.Include)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, fmt.Errorf("restore target: %w", err)
	}
	r := &restorer{repo: repo, opts: opts, target: target, slots: make(chan struct{}, opts.Prefetch),
		verified: map[string]bool{".": true}, dirty: map[string]bool{}}
	res := &Result{Dirs: len(dirs), Symlinks: len(links)}
	for _, d := range dirs {
		if err := r.ensureDir(d.Path); err != nil {
			return nil, err
		}
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	stop := r.report(int64(len(files)), total)
	err = r.restoreFiles(ctx, files)
	stop()
	if err != nil {
		return nil, err
	}
	// Symlinks come after every file, so none can redirect a write.
	for _, l := range links {
		if err := r.restoreSymlink(l); err != nil {
			return nil, err
		}
	}
	if err := r.finishDirs(dirs); err != nil {
		return nil, err
	}
	res.Files = len(files) - len(r.failed)
	res.Bytes = r.bytesDone.Load()
	res.Failed = r.failed
	if len(r.failed) > 0 {
		return res, r.incompleteError(snap, len(files))
	}
	return res, nil
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 2*runtime.GOMAXPROCS(0) + 2
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// selectNodes splits the tree's selected nodes by type: directories
// parents first, and the directories above every selected path.
func selectNodes(t *repository.Tree, include func(string) bool) (dirs, files, links []*repository.Node) {
	want := map[string]bool{}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if include != nil && !include(n.Path) {
			continue
		}
		switch n.Type {
		case "dir":
			want[n.Path] = true
		case "file":
			files = append(files, n)
		case "symlink":
			links = append(links, n)
		}
		for p := path.Dir(n.Path); p != "."; p = path.Dir(p) {
			want[p] = true
		}
	}
	for i := range t.Nodes {
		if n := &t.Nodes[i]; n.Type == "dir" && want[n.Path] {
			dirs = append(dirs, n)
		}
	}
	slices.SortFunc(dirs, func(a, b *repository.Node) int { return strings.Compare(a.Path, b.Path) })
	return dirs, files, links
}

// ensureDir makes sure every component of rel under the target is a real
// directory (never a symlink already there, which could lead outside),
// creating the missing ones.
func (r *restorer) ensureDir(rel string) error {
	r.dirsMu.Lock()
	defer r.dirsMu.Unlock()
	if r.verified[rel] {
		return nil
	}
	if parent := path.Dir(rel); !r.verified[parent] {
		r.dirsMu.Unlock()
		err := r.ensureDir(parent)
		r.dirsMu.Lock()
		if err != nil {
			return err
		}
	}
	abs := r.abs(rel)
	info, err := os.Lstat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Owner-writable until the end, when the snapshot's mode is set.
		if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return r.writeError("create directory "+rel, err)
		}
		r.dirty[path.Dir(rel)] = true
	case err != nil:
		return r.writeError("directory "+rel, err)
	case !info.IsDir():
		return fmt.Errorf("restore: %s exists in the target and is not a directory (%s); move it away", abs, info.Mode().Type())
	}
	r.verified[rel] = true
	return nil
}

func (r *restorer) abs(rel string) string {
	if rel == "." {
		return r.target
	}
	return filepath.Join(r.target, filepath.FromSlash(rel))
}

func (r *restorer) markDirty(rel string) {
	r.dirsMu.Lock()
	r.dirty[rel] = true
	r.dirsMu.Unlock()
}

// writeError classifies a failure to write the target: a full disk is
// its own error, so that the caller says what to do.
func (r *restorer) writeError(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w (%v); partial files were removed, free space in %s and run the restore again", what, ErrDiskFull, err, r.target)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// restoreSymlink creates a symlink under a temporary name and renames it
// into place.
func (r *restorer) restoreSymlink(n *repository.Node) error {
	dir := path.Dir(n.Path)
	if err := r.ensureDir(dir); err != nil {
		return err
	}
	final := r.abs(n.Path)
	tmp := filepath.Join(filepath.Dir(final), ".bulwark-restore-link-"+filepath.Base(final))
	os.Remove(tmp)
	if err := os.Symlink(n.Target, tmp); err != nil {
		return r.writeError("create symlink "+n.Path, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return r.writeError("create symlink "+n.Path, err)
	}
	mtime := n.ModTime
	lchtimes(final, mtime)
	r.markDirty(dir)
	return nil
}

// finishDirs sets the directories' modes and times, deepest first (writing
// into a directory changes its time), and syncs every directory whose
// entries changed, so that the restore is durable when it reports success.
func (r *restorer) finishDirs(dirs []*repository.Node) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		abs := r.abs(d.Path)
		if err := os.Chmod(abs, os.FileMode(d.Mode).Perm()|0o700); err != nil {
			return r.writeError("directory "+d.Path, err)
		}
		if err := os.Chtimes(abs, d.ModTime, d.ModTime); err != nil {
			return r.writeError("directory "+d.Path, err)
		}
	}
	paths := make([]string, 0, len(r.dirty))
	for p := range r.dirty {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := atomicfile.SyncDir(r.abs(p)); err != nil {
			return r.writeError("sync", err)
		}
	}
	return nil
}

func (r *restorer) fileFailed(p string, err error) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	r.failed = append(r.failed, FileError{Path: p, Err: err.Error()})
	if errors.Is(err, repository.ErrCorrupt) || errors.Is(err, repository.ErrNotFound) {
		r.corrupt = true
	}
	r.opts.Logger.Error("file not restored", "path", p, "err", err)
}

func (r *restorer) incompleteError(snap *repository.Snapshot, total int) error {
	slices.SortFunc(r.failed, func(a, b FileError) int { return strings.Compare(a.Path, b.Path) })
	var names []string
	for i, f := range r.failed {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(r.failed)-5))
			break
		}
		names = append(names, f.Path)
	}
	msg := fmt.Sprintf("snapshot %s: %d of %d files could not be restored (%s); every other file was restored",
		snap.ID, len(r.failed), total, strings.Join(names, ", "))
	if r.corrupt {
		return fmt.Errorf("%s: %w: their data in the repository is damaged or missing (%w); run bulwark verify --read-data", msg, ErrIncomplete, repository.ErrCorrupt)
	}
	return fmt.Errorf("%s: %w", msg, ErrIncomplete)
}
