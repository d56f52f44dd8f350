package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

const otherPassword = "a different password for the off-site copy"

// copyFiles are files of many 16 KiB chunks, so that a copy spans several
// packs of the tests' 64 KiB.
func copyFiles(seed uint64, files, chunks int) []testFile {
	var out []testFile
	for f := range files {
		tf := testFile{path: fmt.Sprintf("data/s%d/f%d", seed, f)}
		for c := range chunks {
			tf.chunks = append(tf.chunks, randomBlob(seed*1000+uint64(f*100+c), 16<<10))
		}
		out = append(out, tf)
	}
	return out
}

func newOtherRepo(t *testing.T, be backend.Backend) *Repository {
	t.Helper()
	r, err := InitWithOptions(context.Background(), be, otherPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openOther(t *testing.T, be backend.Backend) *Repository {
	t.Helper()
	r, err := OpenWithOptions(context.Background(), be, otherPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sameSnapshot compares a snapshot in two repositories: metadata, tree
// and every data blob, read back through each repository's own key.
func sameSnapshot(t *testing.T, src, dst *Repository, id ID) {
	t.Helper()
	ctx := context.Background()
	a, err := src.LoadSnapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.LoadSnapshot(ctx, id)
	if err != nil {
		t.Fatalf("destination snapshot: %v", err)
	}
	if a.Tree != b.Tree || a.Host != b.Host || !a.Time.Equal(b.Time) {
		t.Fatalf("snapshot differs: %+v vs %+v", a, b)
	}
	ta, err := src.LoadTree(ctx, a.Tree)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := dst.LoadTree(ctx, b.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(ta.Nodes) != len(tb.Nodes) {
		t.Fatalf("tree has %d nodes in the destination, %d in the source", len(tb.Nodes), len(ta.Nodes))
	}
	for _, n := range tb.Nodes {
		for _, blob := range n.Content {
			want, err := src.LoadBlob(ctx, DataBlob, blob)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dst.LoadBlob(ctx, DataBlob, blob)
			if err != nil {
				t.Fatalf("%s: %v", n.Path, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: blob %s differs", n.Path, blob.Short())
			}
		}
	}
}

func TestCopyBetweenKeys(t *testing.T) {
	ctx := context.Background()
	src, _ := newTestRepo(t)
	files := copyFiles(1, 3, 4)
	s1 := backupFiles(t, src, files)
	// The second snapshot shares all but one file with the first.
	s2 := backupFiles(t, src, append(files[:2:2], copyFiles(2, 1, 3)...))

	dstBe := mem.New()
	dst := newOtherRepo(t, dstBe)
	var phases []Progress
	report, err := Copy(ctx, src, dst, []*Snapshot{s1, s2}, func(p Progress) { phases = append(phases, p) })
	if err != nil {
		t.Fatal(err)
	}
	if report.Snapshots != 2 || report.Skipped != 0 || report.Blobs != 12+3 || report.BytesCopied != 15*16<<10 {
		t.Fatalf("report %+v, want 2 snapshots, 15 blobs of 16 KiB", report)
	}
	if len(phases) == 0 {
		t.Fatal("no progress reported")
	}

	// A fresh open sees the copy, under the destination's password only.
	if _, err := OpenWithOptions(ctx, dstBe, testPassword, testOptions()); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("destination opened with the source password: %v", err)
	}
	fresh := openOther(t, dstBe)
	sameSnapshot(t, src, fresh, s1.ID)
	sameSnapshot(t, src, fresh, s2.ID)
	for _, f := range files[:2] {
		got, err := restoreFile(t, fresh, s1, f.path)
		if err != nil || !bytes.Equal(got, fileData(f)) {
			t.Fatalf("%s restores differently from the destination: %v", f.path, err)
		}
	}
	if rep, err := fresh.Check(ctx, CheckOptions{ReadData: true}, nil); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check of the destination: %v %+v", err, rep)
	}

	// A second copy finds everything there and writes no snapshot twice.
	again, err := Copy(ctx, src, fresh, []*Snapshot{s1, s2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Snapshots != 0 || again.Skipped != 2 || again.Blobs != 0 || again.BytesCopied != 0 {
		t.Fatalf("second copy %+v, want nothing copied", again)
	}
	snaps, err := fresh.Snapshots(ctx)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("destination has %d snapshots (%v), want 2", len(snaps), err)
	}
}

func TestCopySkipsSharedBlobs(t *testing.T) {
	ctx := context.Background()
	src, _ := newTestRepo(t)
	files := copyFiles(3, 2, 3)
	s1 := backupFiles(t, src, files)
	dst := newOtherRepo(t, mem.New())
	// dst already holds the first file's data from its own backup.
	backupFiles(t, dst, files[:1])
	report, err := Copy(ctx, src, dst, []*Snapshot{s1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.Blobs != 3 {
		t.Fatalf("copied %d blobs, want the 3 the destination lacked", report.Blobs)
	}
	sameSnapshot(t, src, dst, s1.ID)
}

// A copy stopped midway (the destination's backend failing, as a lost
// link would) leaves finished packs behind; the rerun sends only what they
// do not hold.
func TestCopyResumes(t *testing.T) {
	ctx := context.Background()
	src, _ := newTestRepo(t)
	s := backupFiles(t, src, copyFiles(4, 4, 8)) // 32 blobs, about 8 packs
	total := 32

	under := t.TempDir()
	dstBe, err := local.Create(under)
	if err != nil {
		t.Fatal(err)
	}
	newOtherRepo(t, dstBe)
	fb := newFaulty(dstBe)
	var packs atomic.Int64
	fb.failSave = func(h backend.Handle) bool {
		return h.Type == backend.PackFile && packs.Add(1) > 3
	}
	dst := openOther(t, fb)
	if _, err := Copy(ctx, src, dst, []*Snapshot{s}, nil); !errors.Is(err, errInjected) {
		t.Fatalf("interrupted copy: %v, want the injected failure", err)
	}

	resumed := openOther(t, dstBe)
	if _, err := resumed.LoadSnapshot(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an interrupted copy left the snapshot: %v", err)
	}
	tree, err := src.LoadTree(ctx, s.Tree)
	if err != nil {
		t.Fatal(err)
	}
	recovered := 0
	for _, n := range tree.Nodes {
		for _, id := range n.Content {
			if resumed.HasBlob(DataBlob, id) {
				recovered++
			}
		}
	}
	if recovered == 0 || recovered == total {
		t.Fatalf("%d of %d blobs survived the interruption, want some", recovered, total)
	}
	report, err := Copy(ctx, src, resumed, []*Snapshot{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.Blobs != total-recovered || report.Snapshots != 1 {
		t.Fatalf("resumed copy sent %d blobs, want the %d missing", report.Blobs, total-recovered)
	}
	sameSnapshot(t, src, openOther(t, dstBe), s.ID)
}

func TestCopyCancelled(t *testing.T) {
	src, _ := newTestRepo(t)
	s := backupFiles(t, src, copyFiles(5, 1, 2))
	dst := newOtherRepo(t, mem.New())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, src, dst, []*Snapshot{s}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("copy with a cancelled context: %v", err)
	}
	if _, err := dst.LoadSnapshot(context.Background(), s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a cancelled copy stored the snapshot: %v", err)
	}
}

// BenchmarkCopy: 8 MiB of incompressible data between two in-memory
// repositories with different keys (decrypt, decompress check, seal).
func BenchmarkCopy(b *testing.B) {
	ctx := context.Background()
	src, err := InitWithOptions(ctx, mem.New(), testPassword, testOptions())
	if err != nil {
		b.Fatal(err)
	}
	files := copyFiles(9, 8, 64) // 512 blobs of 16 KiB
	tree := &Tree{}
	for _, f := range files {
		n := Node{Path: f.path, Type: NodeFile, Mode: 0o644}
		for _, c := range f.chunks {
			id, _, err := src.SaveBlob(ctx, DataBlob, c)
			if err != nil {
				b.Fatal(err)
			}
			n.Content = append(n.Content, id)
			n.Size += int64(len(c))
		}
		tree.Nodes = append(tree.Nodes, n)
	}
	treeID, err := src.SaveTree(ctx, tree)
	if err != nil {
		b.Fatal(err)
	}
	if err := src.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	s := &Snapshot{Host: "bench", Kind: "cold", Tree: treeID}
	if _, err := src.SaveSnapshot(ctx, s); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(8 << 20)
	for b.Loop() {
		dst, err := InitWithOptions(ctx, mem.New(), otherPassword, testOptions())
		if err != nil {
			b.Fatal(err)
		}
		r, err := Copy(ctx, src, dst, []*Snapshot{s}, nil)
		if err != nil || r.Blobs != 512 {
			b.Fatalf("copy: %v %+v", err, r)
		}
	}
}
