package repository

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

// testKDF keeps unit tests fast; TestDefaultKDF covers the real one.
var testKDF = KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}

const testPassword = "correct horse battery staple"

func testOptions() Options {
	return Options{KDF: testKDF, PackSize: 64 << 10, IndexEvery: 2, Host: "testhost", User: "tester", Logger: slog.New(slog.DiscardHandler)}
}

func newTestRepo(t *testing.T) (*Repository, *mem.Mem) {
	t.Helper()
	be := mem.New()
	r, err := InitWithOptions(context.Background(), be, testPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

func reopen(t *testing.T, be backend.Backend) *Repository {
	t.Helper()
	r, err := OpenWithOptions(context.Background(), be, testPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// randomBlob returns n bytes that differ per seed.
func randomBlob(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

type testFile struct {
	path   string
	chunks [][]byte
}

// backupFiles stores files as a snapshot the way the archiver does: data
// blobs, a tree, Flush, the snapshot.
func backupFiles(t *testing.T, r *Repository, files []testFile) *Snapshot {
	t.Helper()
	ctx := context.Background()
	tree := &Tree{}
	for _, f := range files {
		n := Node{Path: f.path, Type: NodeFile, Mode: 0o644, ModTime: time.Unix(1700000000, 0).UTC()}
		h := NewHasher()
		for _, c := range f.chunks {
			id, _, err := r.SaveBlob(ctx, DataBlob, c)
			if err != nil {
				t.Fatal(err)
			}
			n.Content = append(n.Content, id)
			n.Size += int64(len(c))
			h.Write(c)
		}
		sum := sumID(h)
		n.Hash = &sum
		tree.Nodes = append(tree.Nodes, n)
	}
	treeID, err := r.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{Time: time.Now().UTC(), Host: "testhost", Kind: "cold", SiteVersion: "test", Tree: treeID}
	if _, err := r.SaveSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// restoreFile reads a file of a snapshot back through the repository.
func restoreFile(t *testing.T, r *Repository, s *Snapshot, path string) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	tree, err := r.LoadTree(ctx, s.Tree)
	if err != nil {
		return nil, err
	}
	for _, n := range tree.Nodes {
		if n.Path != path {
			continue
		}
		var buf bytes.Buffer
		for _, id := range n.Content {
			b, err := r.LoadBlob(ctx, DataBlob, id)
			if err != nil {
				return nil, err
			}
			buf.Write(b)
		}
		return buf.Bytes(), nil
	}
	t.Fatalf("no %s in snapshot", path)
	return nil, nil
}

func fileData(f testFile) []byte { return bytes.Join(f.chunks, nil) }

func snapshotHandle(id ID) backend.Handle {
	return backend.Handle{Type: backend.SnapshotFile, Name: id.String()}
}
