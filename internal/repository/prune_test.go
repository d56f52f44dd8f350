package repository

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// pruneFixture: three snapshots over shared and private data; forgetting
// the first leaves data only it used: a pack of it wholly unused (removed),
// one mostly unused (rewritten: the shared chunks share it), others kept.
func pruneFixture(t *testing.T, r *Repository) (gone, kept []*Snapshot, files map[*Snapshot][]testFile) {
	t.Helper()
	shared := testFile{"shared.bin", [][]byte{randomBlob(100, 30000), randomBlob(101, 30000)}}
	files = make(map[*Snapshot][]testFile)
	var snaps []*Snapshot
	for i := range 3 {
		private := testFile{fmt.Sprintf("private-%d.bin", i), [][]byte{randomBlob(uint64(200+10*i), 70000), randomBlob(uint64(201+10*i), 25000)}}
		fs := []testFile{shared, private}
		s := backupFiles(t, r, fs)
		files[s] = fs
		snaps = append(snaps, s)
	}
	return snaps[:1], snaps[1:], files
}

func assertRestores(t *testing.T, r *Repository, snaps []*Snapshot, files map[*Snapshot][]testFile) {
	t.Helper()
	for _, s := range snaps {
		for _, f := range files[s] {
			got, err := restoreFile(t, r, s, f.path)
			if err != nil {
				t.Fatalf("snapshot %s file %s: %v", s.ID.Short(), f.path, err)
			}
			if string(got) != string(fileData(f)) {
				t.Fatalf("snapshot %s file %s: content differs", s.ID.Short(), f.path)
			}
		}
	}
}

func TestPruneKeepsWhatSnapshotsNeedAndFreesTheRest(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	gone, kept, files := pruneFixture(t, r)
	// Nothing to prune while every snapshot exists.
	rep, err := r.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksRemoved+rep.PacksRewritten != 0 || rep.BytesFreed != 0 {
		t.Fatalf("prune with nothing unused: %+v", rep)
	}
	before := r.Stats()
	for _, s := range gone {
		if err := r.RemoveSnapshot(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = r.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesFreed <= 0 || rep.BlobsRemoved == 0 || rep.PacksRemoved == 0 || rep.PacksRewritten == 0 || rep.PacksKept == 0 {
		t.Fatalf("prune after forgetting a snapshot: %+v", rep)
	}
	if after := r.Stats(); after.Blobs != before.Blobs-rep.BlobsRemoved {
		t.Fatalf("index has %d blobs after prune, want %d - %d", after.Blobs, before.Blobs, rep.BlobsRemoved)
	}
	assertPruned(t, r)
	assertRestores(t, r, kept, files)
	assertRestores(t, reopen(t, be), kept, files)
	assertClean(t, r)
}

// Prune is stopped by an injected failure before each of its mutations in
// turn (a crash at every step). After each stop the repository must check
// clean, every remaining snapshot must restore, a backup must still work,
// and a new prune must finish the job.
func TestPruneCrashConsistencyAtEveryStep(t *testing.T) {
	for step := 0; ; step++ {
		r0, base := newTestRepo(t)
		gone, kept, files := pruneFixture(t, r0)
		for _, s := range gone {
			if err := r0.RemoveSnapshot(context.Background(), s.ID); err != nil {
				t.Fatal(err)
			}
		}
		fb := newFaulty(base)
		r, err := OpenWithOptions(context.Background(), fb, testPassword, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		fb.setFailAfter(step)
		_, err = r.Prune(context.Background(), nil)
		if err == nil {
			if step < 6 {
				t.Fatalf("prune finished after only %d mutations", step)
			}
			t.Logf("prune needs %d mutations; each prefix was crash-tested", step)
			return
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("step %d: prune failed with %v, not the injected failure", step, err)
		}
		// A fresh process opens what the "crashed" one left.
		after := reopen(t, base)
		rep := mustCheck(t, after, CheckOptions{ReadData: true})
		if len(rep.Problems) != 0 {
			t.Fatalf("step %d: check after an interrupted prune: %+v", step, rep.Problems)
		}
		assertRestores(t, after, kept, files)
		// A backup after the crash works and restores.
		extra := testFile{"later.bin", [][]byte{randomBlob(999, 40000), files[kept[0]][1].chunks[0]}}
		s := backupFiles(t, after, []testFile{extra})
		files[s] = []testFile{extra}
		if _, err := after.Prune(context.Background(), nil); err != nil {
			t.Fatalf("step %d: prune after the crash: %v", step, err)
		}
		assertRestores(t, after, append(kept, s), files)
		assertClean(t, after)
		assertPruned(t, after)
	}
}

func TestPruneRefusesWhenSnapshotUnreadable(t *testing.T) {
	r, be := newTestRepo(t)
	s := backupFiles(t, r, []testFile{{"a", [][]byte{randomBlob(1, 1000)}}})
	be.Corrupt(snapshotHandle(s.ID), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	if _, err := r.Prune(context.Background(), nil); err == nil {
		t.Fatal("prune ran with an unreadable snapshot")
	}
}

func TestPruneRewritesMostlyUnusedPacks(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	// Big pack size: everything lands in one pack.
	r.opts.PackSize = 1 << 20
	keep := testFile{"keep", [][]byte{randomBlob(1, 10000)}}
	drop := testFile{"drop", [][]byte{randomBlob(2, 60000)}}
	s1 := backupFiles(t, r, []testFile{keep, drop})
	s2 := backupFiles(t, r, []testFile{keep})
	if err := r.RemoveSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksRewritten != 1 || rep.PacksWritten != 1 || rep.BytesFreed < 60000 {
		t.Fatalf("prune of a mostly unused pack: %+v", rep)
	}
	assertRestores(t, r, []*Snapshot{s2}, map[*Snapshot][]testFile{s2: {keep}})
	assertClean(t, r)
}

// assertPruned checks what prune promises: no pack without used blobs, no
// pack at least RewriteThreshold unused.
func assertPruned(t *testing.T, r *Repository) {
	t.Helper()
	used, err := r.usedBlobs(context.Background(), func(Progress) {})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.idx.packs {
		var total, usedBytes int64
		for _, e := range p.Blobs {
			total += int64(e.Length)
			if used[e.key()] {
				usedBytes += int64(e.Length)
			}
		}
		if usedBytes == 0 || float64(total-usedBytes) >= RewriteThreshold*float64(total) {
			t.Fatalf("after prune, pack %s has %d of %d bytes used", p.ID.Short(), usedBytes, total)
		}
	}
}
