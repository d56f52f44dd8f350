package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		l, err := Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

const packName = "ab34567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"

func TestPacksLiveInSubdirectoryByPrefix(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(context.Background(), backend.Handle{Type: backend.PackFile, Name: packName}, strings.NewReader("pack"), 4); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "data", "ab", packName))
	if err != nil || string(got) != "pack" {
		t.Fatalf("pack file at data/ab/: %q, %v", got, err)
	}
	subdirs, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil || len(subdirs) != 256 {
		t.Fatalf("data has %d subdirectories, want 256 (%v)", len(subdirs), err)
	}
}

// A crash in the middle of a Save leaves a temporary file; List must not
// show it and Open must still work.
func TestListSkipsTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Save(ctx, backend.Handle{Type: backend.PackFile, Name: packName}, strings.NewReader("p"), 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"data/ab/.tmp-123", "index/.tmp-456", "snapshots/.tmp-1"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("half written"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, ft := range []backend.FileType{backend.PackFile, backend.IndexFile, backend.SnapshotFile} {
		var names []string
		if err := l.List(ctx, ft, func(fi backend.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.HasPrefix(n, ".") {
				t.Fatalf("list %s shows temporary file %q", ft, n)
			}
		}
		if ft == backend.PackFile && len(names) != 1 {
			t.Fatalf("list data = %v, want the one pack", names)
		}
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("open with temporary files around: %v", err)
	}
}

func TestSaveLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := backend.Handle{Type: backend.IndexFile, Name: "abc"}
	if err := l.Save(ctx, h, strings.NewReader("idx"), 3); err != nil {
		t.Fatal(err)
	}
	// A failed save (short reader) cleans up as well.
	if err := l.Save(ctx, backend.Handle{Type: backend.IndexFile, Name: "def"}, strings.NewReader("x"), 2); err == nil {
		t.Fatal("short save succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "abc" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("index directory holds %v, want only abc", names)
	}
}

func TestCreateRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "not a repository") {
		t.Fatalf("Create over a directory with files: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "thesis.tex")); string(got) != "precious" {
		t.Fatal("Create touched a foreign file")
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create made its layout in a foreign directory: %v", err)
	}
}

func TestCreateAcceptsExistingRepository(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Save(context.Background(), backend.Handle{Type: backend.ConfigFile}, bytes.NewReader([]byte("cfg")), 3); err != nil {
		t.Fatal(err)
	}
	l2, err := Create(dir)
	if err != nil {
		t.Fatalf("Create over an existing repository: %v", err)
	}
	// The repository layer relies on this to refuse a second init.
	err = l2.Save(context.Background(), backend.Handle{Type: backend.ConfigFile}, bytes.NewReader([]byte("new")), 3)
	if !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second config save: %v, want ErrExists", err)
	}
}

func TestOpenRefusesNonRepository(t *testing.T) {
	for name, dir := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "nope"),
		"plain":   t.TempDir(),
	} {
		if _, err := Open(dir); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("%s: Open = %v, want ErrNotFound", name, err)
		}
	}
}

// A repository copied by a tool that drops empty directories still takes
// new packs.
func TestSaveRecreatesMissingPackSubdirectory(t *testing.T) {
	dir := t.TempDir()
	l, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "data", "ab")); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(context.Background(), backend.Handle{Type: backend.PackFile, Name: packName}, strings.NewReader("p"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "ab", packName)); err != nil {
		t.Fatal(err)
	}
}
