package restorer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRealDiskFull restores onto a real file system that is too small: a
// 2 MiB tmpfs, mounted for the test (root only; skipped otherwise).
func TestRealDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	repo, _ := newRepo(t)
	files := sampleFiles()
	snap := snapshotOf(t, repo, files)
	_, err := Restore(context.Background(), repo, snap, Options{Target: dir})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("restore onto a full tmpfs: %v", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	// What is there is whole: a file either came back entirely or not at all.
	for _, f := range files {
		if f.typ != "" {
			continue
		}
		if got, err := os.ReadFile(filepath.Join(dir, f.path)); err == nil && !bytes.Equal(got, f.data) {
			t.Fatalf("%s is partial: %d of %d bytes", f.path, len(got), len(f.data))
		}
	}
}
