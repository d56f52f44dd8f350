package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Save implements backend.Backend: temporary file in the target directory,
// fsync, link to the final name (atomic, and fails if the name exists),
// remove the temporary name, fsync the directory.
func (l *Local) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) (err error) {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if size < 0 {
		return fmt.Errorf("save %s: negative size %d", h, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	final := l.path(h)
	dir := filepath.Dir(final)
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("save %s: %w", h, backend.ErrExists)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) && h.Type == backend.PackFile {
		// A repository copied without its empty pack subdirectories.
		if err = os.MkdirAll(dir, dirPerm); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	buf := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{f}, io.LimitReader(&ctxReader{ctx: ctx, r: rd}, size), *buf)
	copyBuffers.Put(buf)
	if err == nil && n < size {
		err = io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("save %s: reader gave %d bytes, want %d", h, n, size)
		}
		return fmt.Errorf("save %s: write: %w", h, err)
	}
	var extra [1]byte
	if m, _ := io.ReadFull(rd, extra[:]); m > 0 {
		return fmt.Errorf("save %s: reader has more than %d bytes", h, size)
	}
	if err := f.Chmod(filePerm); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save %s: sync: %w", h, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("save %s: close: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := publish(tmp, final); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	os.Remove(tmp) // the final name holds the file now; the directory sync below covers both names
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return nil
}

// copyBuffers hold 1 MiB buffers: a pack is written in 16 system calls
// instead of the 512 of io.Copy's default 32 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// writerOnly hides *os.File's ReadFrom, which would ignore our buffer.
type writerOnly struct{ io.Writer }

// publish gives the complete temporary file its final name without ever
// replacing an existing file. A hard link does that atomically; on file
// systems without hard links it falls back to check-then-rename, which
// only two concurrent Saves of the same name could race (the repository
// never does that with different content).
func publish(tmp, final string) error {
	err := os.Link(tmp, final)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return backend.ErrExists
	}
	if _, statErr := os.Lstat(final); statErr == nil {
		return backend.ErrExists
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return nil
}
