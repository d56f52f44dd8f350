package restorer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// The tests build snapshots through the repository API, hostile ones
// included, and restore them into temporary directories.

type testFile struct {
	path   string
	data   []byte
	chunks int // blobs to cut it into
	mode   uint32
	typ    string // "" = file
	target string // symlink target
}

// cheapKDF keeps key derivation fast in tests; the default takes a good
// part of a second on purpose.
var cheapKDF = repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newRepo(t *testing.T) (*repository.Repository, *mem.Mem) {
	t.Helper()
	be := mem.New()
	repo, err := repository.InitWithOptions(context.Background(), be, "pw", repository.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	return repo, be
}

// snapshotOf stores files as a snapshot; nodes for directories above them
// are added.
func snapshotOf(t *testing.T, repo *repository.Repository, files []testFile) *repository.Snapshot {
	t.Helper()
	snap, err := buildSnapshot(repo, files)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func buildSnapshot(repo *repository.Repository, files []testFile) (*repository.Snapshot, error) {
	ctx := context.Background()
	var nodes []repository.Node
	dirs := map[string]bool{}
	mtime := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, f := range files {
		for d := filepath.Dir(f.path); d != "." && d != "/" && !strings.Contains(d, ".."); d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				nodes = append(nodes, repository.Node{Path: d, Type: "dir", Mode: 0o755, ModTime: mtime})
			}
		}
		n := repository.Node{Path: f.path, Type: f.typ, Mode: f.mode, ModTime: mtime, Target: f.target}
		if n.Type == "" {
			n.Type = "file"
		}
		if n.Mode == 0 {
			n.Mode = 0o644
		}
		if n.Type == "file" {
			n.Size = int64(len(f.data))
			h := repository.Hash(f.data)
			n.Hash = &h
			chunks := max(f.chunks, 1)
			step := (len(f.data) + chunks - 1) / chunks
			for off := 0; off < len(f.data); off += step {
				id, _, err := repo.SaveBlob(ctx, repository.DataBlob, f.data[off:min(off+step, len(f.data))])
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, id)
			}
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b repository.Node) int { return strings.Compare(a.Path, b.Path) })
	// Stored as SaveTree encodes a tree but without its validation: what
	// someone who can write to the repository, key in hand, could store.
	raw, err := json.Marshal(&repository.Tree{Nodes: nodes})
	if err != nil {
		return nil, err
	}
	treeID, _, err := repo.SaveBlob(ctx, repository.TreeBlob, raw)
	if err != nil {
		return nil, err
	}
	if err := repo.Flush(ctx); err != nil {
		return nil, err
	}
	snap := &repository.Snapshot{Time: time.Now(), Host: "test", Kind: "cold", Tree: treeID}
	if _, err := repo.SaveSnapshot(ctx, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

func checkFile(t *testing.T, dir string, f testFile) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, f.path))
	if err != nil || !bytes.Equal(got, f.data) {
		t.Fatalf("%s: %d bytes restored (%v), want %d identical", f.path, len(got), err, len(f.data))
	}
}

// leftovers lists temporary files left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".bulwark-restore") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func sampleFiles() []testFile {
	return []testFile{
		{path: "models/iris/1/model.onnx", data: randomBytes(1, 3<<20), chunks: 7},
		{path: "models/iris/1/manifest.json", data: []byte(`{"name":"iris"}`)},
		{path: "models/iris/2/model.onnx", data: randomBytes(2, 1<<20), chunks: 3, mode: 0o600},
		{path: "admin-token", data: []byte("secret\n"), mode: 0o600},
		{path: "empty", data: nil},
		{path: "config/current.yaml", typ: "symlink", target: "../admin-token"},
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	repo, _ := newRepo(t)
	files := sampleFiles()
	snap := snapshotOf(t, repo, files)
	dir := filepath.Join(t.TempDir(), "out")
	var last Progress
	res, err := Restore(context.Background(), repo, snap, Options{Target: dir, Workers: 3, Prefetch: 2, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 5 || res.Symlinks != 1 || res.Bytes != 4<<20+15+7 || len(res.Failed) != 0 {
		t.Fatalf("result %+v", res)
	}
	if last.FilesDone != 5 || last.BytesDone != last.BytesTotal {
		t.Fatalf("final progress %+v", last)
	}
	for _, f := range files {
		if f.typ == "symlink" {
			if got, err := os.Readlink(filepath.Join(dir, f.path)); err != nil || got != f.target {
				t.Fatalf("symlink %s -> %q, %v", f.path, got, err)
			}
			continue
		}
		checkFile(t, dir, f)
	}
	info, _ := os.Stat(filepath.Join(dir, "models/iris/2/model.onnx"))
	if info.Mode().Perm() != 0o600 || !info.ModTime().Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("mode %v mtime %v", info.Mode(), info.ModTime())
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	// Restoring again over the same directory replaces the files.
	if _, err := Restore(context.Background(), repo, snap, Options{Target: dir, Include: func(p string) bool { return strings.HasPrefix(p, "models/iris/2") }}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dir, files[2])
}

// TestDamagedBlobFailsOnlyItsFile: a byte flipped in a pack damages one
// blob; the files using it are reported and absent, the others restored.
func TestDamagedBlobFailsOnlyItsFile(t *testing.T) {
	repo, be := newRepo(t)
	files := sampleFiles()
	snap := snapshotOf(t, repo, files)
	// The largest pack holds the data (trees have packs of their
	// own); early in it is the first blob stored, the first chunk of the
	// big model (packs hold blobs in the order saved).
	var victim string
	var largest int64
	be.List(context.Background(), backend.PackFile, func(fi backend.FileInfo) error {
		if fi.Size > largest {
			victim, largest = fi.Name, fi.Size
		}
		return nil
	})
	be.Corrupt(backend.Handle{Type: backend.PackFile, Name: victim}, func(b []byte) []byte { b[100] ^= 0x40; return b })
	// The repository may cache what it read; a fresh one sees the damage.
	repo2, err := repository.OpenWithOptions(context.Background(), be, "pw", repository.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := Restore(context.Background(), repo2, snap, Options{Target: dir})
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, repository.ErrCorrupt) || res == nil {
		t.Fatalf("restore with a damaged blob: %v", err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Path != files[0].path || !strings.Contains(err.Error(), files[0].path) {
		t.Fatalf("failed %+v (%v)", res.Failed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, files[0].path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the damaged file exists: %v", err)
	}
	for _, f := range files[1:] {
		if f.typ == "" {
			checkFile(t, dir, f)
		}
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestHostileTreesAreRefused: nothing is written for a snapshot with a
// path that escapes the target.
func TestHostileTreesAreRefused(t *testing.T) {
	for name, f := range map[string]testFile{
		"dot-dot":         {path: "../escaped", data: []byte("x")},
		"nested dot-dot":  {path: "models/../../escaped", data: []byte("x")},
		"absolute":        {path: "/tmp/escaped", data: []byte("x")},
		"escaping link":   {path: "link", typ: "symlink", target: "../../etc"},
		"absolute target": {path: "link", typ: "symlink", target: "/etc/passwd"},
	} {
		t.Run(name, func(t *testing.T) {
			repo, _ := newRepo(t)
			snap := snapshotOf(t, repo, []testFile{{path: "fine", data: []byte("ok")}, f})
			dir := filepath.Join(t.TempDir(), "out")
			_, err := Restore(context.Background(), repo, snap, Options{Target: dir})
			if !errors.Is(err, repository.ErrCorrupt) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("hostile snapshot: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the target was created: %v", err)
			}
		})
	}
}

// TestDiskFullLeavesNoPartialFile: a write failing with ENOSPC stops the
// restore with ErrDiskFull, and no temporary or partial file remains.
func TestDiskFullLeavesNoPartialFile(t *testing.T) {
	repo, _ := newRepo(t)
	files := sampleFiles()
	snap := snapshotOf(t, repo, files)
	budget := int64(2 << 20)
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	orig := newTempFile
	t.Cleanup(func() { newTempFile = orig })
	newTempFile = func(dir string) (tempFile, error) {
		f, err := orig(dir)
		if err != nil {
			return nil, err
		}
		return &fullDisk{tempFile: f, budget: &budget, mu: mu}, nil
	}
	dir := t.TempDir()
	_, err := Restore(context.Background(), repo, snap, Options{Target: dir, Workers: 2})
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("restore on a full disk: %v", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, files[0].path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file being written when the disk filled exists: %v", err)
	}
}

// fullDisk accepts writes up to a shared budget, then fails with ENOSPC.
type fullDisk struct {
	tempFile
	budget *int64
	mu     chan struct{}
}

func (f *fullDisk) Write(p []byte) (int, error) {
	<-f.mu
	defer func() { f.mu <- struct{}{} }()
	if int64(len(p)) > *f.budget {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	*f.budget -= int64(len(p))
	return f.tempFile.Write(p)
}

// TestSymlinkInTheTargetIsNotFollowed: a directory of the snapshot that is
// a symlink in the target (to anywhere) stops the restore before writing
// through it.
func TestSymlinkInTheTargetIsNotFollowed(t *testing.T) {
	repo, _ := newRepo(t)
	snap := snapshotOf(t, repo, []testFile{{path: "models/m/1/model.onnx", data: []byte("weights")}})
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "models")); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(context.Background(), repo, snap, Options{Target: dir})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("restore through a symlink: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("wrote outside the target: %v", entries)
	}
}
