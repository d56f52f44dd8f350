package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Local stores a repository's files in a directory.
type Local struct {
	dir string
}

var _ backend.Backend = (*Local)(nil)

const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// Create makes the repository layout in dir, creating dir if needed. It
// refuses a directory that holds anything but the layout's own entries,
// so a mistyped path never turns someone's files into a repository. A
// directory that already is a repository is accepted; the repository
// layer refuses to initialise it twice because its config exists.
func Create(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", abs, err)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", abs, err)
	}
	for _, e := range entries {
		if !isLayoutEntry(e.Name()) {
			return nil, fmt.Errorf("create repository %s: directory is not empty and not a repository (found %q)", abs, e.Name())
		}
	}
	for _, t := range backend.FileTypes {
		if t == backend.ConfigFile {
			continue
		}
		if err := os.MkdirAll(filepath.Join(abs, string(t)), dirPerm); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", abs, err)
		}
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(abs, string(backend.PackFile), fmt.Sprintf("%02x", i)), dirPerm); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", abs, err)
		}
	}
	if err := atomicfile.SyncDir(filepath.Join(abs, string(backend.PackFile))); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", abs, err)
	}
	if err := atomicfile.SyncDir(abs); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", abs, err)
	}
	return &Local{dir: abs}, nil
}

// Open opens the repository directory dir. A directory without the layout
// gives an error wrapping backend.ErrNotFound.
func Open(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	for _, t := range backend.FileTypes {
		if t == backend.ConfigFile {
			continue
		}
		fi, err := os.Stat(filepath.Join(abs, string(t)))
		if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
			return nil, fmt.Errorf("open repository %s: not a repository (no %s directory): %w", abs, t, backend.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %w", abs, err)
		}
	}
	return &Local{dir: abs}, nil
}

func isLayoutEntry(name string) bool {
	for _, t := range backend.FileTypes {
		if name == string(t) {
			return true
		}
	}
	return false
}

// Location implements backend.Backend: the absolute directory.
func (l *Local) Location() string { return l.dir }

// Close implements backend.Backend.
func (l *Local) Close() error { return nil }

func (l *Local) path(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return filepath.Join(l.dir, string(backend.ConfigFile))
	case backend.PackFile:
		return filepath.Join(l.dir, string(h.Type), h.Name[:2], h.Name)
	default:
		return filepath.Join(l.dir, string(h.Type), h.Name)
	}
}

// Stat implements backend.Backend.
func (l *Local) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	fi, err := os.Stat(l.path(h))
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, mapNotExist(err))
	}
	return backend.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Load implements backend.Backend.
func (l *Local) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("load %s: negative offset %d or length %d", h, offset, length)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	f, err := os.Open(l.path(h))
	if err != nil {
		return fmt.Errorf("load %s: %w", h, mapNotExist(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	size := fi.Size()
	if length == 0 {
		length = size - offset
	}
	if offset > size || offset+length > size {
		return fmt.Errorf("load %s: range %d+%d of %d bytes: %w", h, offset, length, size, backend.ErrShortFile)
	}
	return fn(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, offset, length)})
}

// Remove implements backend.Backend.
func (l *Local) Remove(ctx context.Context, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	p := l.path(h)
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", h, mapNotExist(err))
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	return nil
}

// List implements backend.Backend.
func (l *Local) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	switch t {
	case backend.ConfigFile:
		fi, err := l.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	case backend.PackFile:
		subdirs, err := os.ReadDir(filepath.Join(l.dir, string(t)))
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		for _, sub := range subdirs {
			if !sub.IsDir() || backend.IsTemporaryName(sub.Name()) {
				continue
			}
			if err := l.listDir(ctx, filepath.Join(l.dir, string(t), sub.Name()), fn); err != nil {
				return fmt.Errorf("list %s: %w", t, err)
			}
		}
		return nil
	default:
		if err := l.listDir(ctx, filepath.Join(l.dir, string(t)), fn); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return nil
	}
}

// listDir reports the complete regular files of one directory, skipping
// temporary files of Saves in progress and ones that vanish while listed
// (a concurrent Remove).
func (l *Local) listDir(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if backend.IsTemporaryName(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(backend.FileInfo{Name: e.Name(), Size: info.Size()}); err != nil {
			return err
		}
	}
	return nil
}

func mapNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", backend.ErrNotFound, err)
	}
	return err
}

// ctxReader ends a long read when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
