package repository

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

func mustCheck(t *testing.T, r *Repository, opts CheckOptions) *CheckReport {
	t.Helper()
	rep, err := r.Check(context.Background(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func assertClean(t *testing.T, r *Repository) {
	t.Helper()
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if len(rep.Problems) > 0 {
		t.Fatalf("check found problems in a repository that should be clean: %+v", rep.Problems)
	}
}

func packOf(t *testing.T, r *Repository, k blobKey) (blobLoc, backend.Handle) {
	t.Helper()
	loc, ok := r.lookup(k)
	if !ok {
		t.Fatalf("%s not indexed", k)
	}
	return loc, backend.Handle{Type: backend.PackFile, Name: loc.pack.ID.String()}
}

func TestCheckCleanRepository(t *testing.T) {
	r, _ := newTestRepo(t)
	backupFiles(t, r, []testFile{{"a", [][]byte{randomBlob(1, 30000)}}, {"b", [][]byte{randomBlob(2, 90000)}}})
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if len(rep.Problems) != 0 || rep.Snapshots != 1 || rep.ReadPacks == 0 || rep.ReadPacks != rep.Packs {
		t.Fatalf("report = %+v", rep)
	}
}

// A bit flip inside a blob: the structure check cannot see it, read-data
// names the pack, the blob, the snapshots and the file; the other files
// still restore.
func TestCheckFindsBitFlipAndItsSnapshotAndFile(t *testing.T) {
	r, be := newTestRepo(t)
	victim := testFile{"models/resnet/weights.bin", [][]byte{randomBlob(1, 20000), randomBlob(2, 20000)}}
	other := testFile{"models/other/model.onnx", [][]byte{randomBlob(3, 200000)}} // over the pack size: its own pack
	s1 := backupFiles(t, r, []testFile{victim, other})
	s2 := backupFiles(t, r, []testFile{victim}) // a second snapshot sharing the damaged blob
	bad := victim.chunks[1]
	loc, h := packOf(t, r, blobKey{DataBlob, Hash(bad)})
	be.Corrupt(h, func(b []byte) []byte {
		b[loc.entry().Offset+loc.entry().Length/2] ^= 0x01
		return b
	})

	if rep := mustCheck(t, r, CheckOptions{}); len(rep.Problems) != 0 {
		t.Fatalf("structure check reports %+v for a flip only reading can find", rep.Problems)
	}
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	var blobProblem *Problem
	for i, p := range rep.Problems {
		if p.Pack != h.Name {
			t.Fatalf("problem in pack %s, want only %s: %+v", p.Pack, h.Name, p)
		}
		if p.Blob != nil && *p.Blob == Hash(bad) {
			blobProblem = &rep.Problems[i]
		}
	}
	if blobProblem == nil {
		t.Fatalf("no problem names the flipped blob: %+v", rep.Problems)
	}
	wantSnaps := []ID{s1.ID, s2.ID}
	slices.SortFunc(wantSnaps, ID.Compare)
	if !slices.Equal(blobProblem.Snapshots, wantSnaps) || !slices.Equal(blobProblem.Files, []string{victim.path}) {
		t.Fatalf("problem affects snapshots %v files %v, want %v and [%s]", blobProblem.Snapshots, blobProblem.Files, wantSnaps, victim.path)
	}
	// The pack-level problem (hash mismatch) is there too.
	if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Blob == nil && strings.Contains(p.Err, "hashes to") }) {
		t.Fatalf("no pack hash problem: %+v", rep.Problems)
	}
	// Unaffected files restore.
	if got, err := restoreFile(t, r, s1, other.path); err != nil || string(got) != string(fileData(other)) {
		t.Fatalf("unaffected file: %v", err)
	}
}

func TestCheckFindsTruncatedPack(t *testing.T) {
	r, be := newTestRepo(t)
	f := testFile{"state/controller.db", [][]byte{randomBlob(1, 10000), randomBlob(2, 10000), randomBlob(3, 10000)}}
	s := backupFiles(t, r, []testFile{f})
	loc, h := packOf(t, r, blobKey{DataBlob, Hash(f.chunks[2])})
	be.Corrupt(h, func(b []byte) []byte { return b[:loc.entry().Offset+10] })

	r2 := reopen(t, be)
	rep := mustCheck(t, r2, CheckOptions{})
	if len(rep.Problems) == 0 {
		t.Fatal("structure check missed a truncated pack")
	}
	p := rep.Problems[0]
	if p.Pack != h.Name || !slices.Equal(p.Snapshots, []ID{s.ID}) || !slices.Equal(p.Files, []string{f.path}) {
		t.Fatalf("problem = %+v, want pack %s, snapshot %s, file %s", p, h.Name, s.ID, f.path)
	}
	// Blobs before the cut are still readable.
	if _, err := r2.LoadBlob(context.Background(), DataBlob, Hash(f.chunks[0])); err != nil {
		t.Fatalf("blob before the cut: %v", err)
	}
	// The lost blob is not used for deduplication: the next backup
	// stores it again, which heals the snapshot's successors.
	if !r2.HasBlob(DataBlob, Hash(f.chunks[0])) || r2.HasBlob(DataBlob, Hash(f.chunks[2])) {
		t.Fatal("index after truncation: want the intact blob known and the lost one unknown")
	}
}

func TestCheckFindsMissingPack(t *testing.T) {
	r, be := newTestRepo(t)
	f := testFile{"x", [][]byte{randomBlob(1, 10000)}}
	s := backupFiles(t, r, []testFile{f})
	_, h := packOf(t, r, blobKey{DataBlob, Hash(f.chunks[0])})
	if err := be.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	rep := mustCheck(t, r, CheckOptions{})
	if len(rep.Problems) != 1 || rep.Problems[0].Pack != h.Name || !slices.Equal(rep.Problems[0].Files, []string{"x"}) || !slices.Equal(rep.Problems[0].Snapshots, []ID{s.ID}) {
		t.Fatalf("problems = %+v", rep.Problems)
	}
}

func TestCheckSubsetReadsSomePacks(t *testing.T) {
	r, _ := newTestRepo(t)
	var files []testFile
	for i := range 8 {
		files = append(files, testFile{string(rune('a' + i)), [][]byte{randomBlob(uint64(i), 70000)}})
	}
	backupFiles(t, r, files)
	rep := mustCheck(t, r, CheckOptions{Subset: 0.25})
	if rep.ReadPacks == 0 || rep.ReadPacks >= rep.Packs {
		t.Fatalf("subset 25%%: read %d of %d packs", rep.ReadPacks, rep.Packs)
	}
}
