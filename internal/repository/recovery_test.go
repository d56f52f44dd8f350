package repository

import (
	"context"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// A backup that dies after uploading packs but before writing their index
// (here: every index write fails) leaves packs only their trailers
// describe. The next Open recovers them: their blobs are known, nothing is
// uploaded again, and a Flush under a lock indexes them.
func TestOrphanPacksRecoveredWithoutReupload(t *testing.T) {
	r0, base := newTestRepo(t)
	_ = r0
	fb := newFaulty(base)
	fb.failSave = func(h backend.Handle) bool { return h.Type == backend.IndexFile }
	r, err := OpenWithOptions(context.Background(), fb, testPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []ID
	for i := range 20 {
		id, _, err := r.SaveBlob(ctx, DataBlob, randomBlob(uint64(i), 20000))
		if err != nil {
			break // the first failed index write makes later saves fail
		}
		ids = append(ids, id)
	}
	r.uploadAll(ctx) // what was dispatched reaches the backend; no index does
	packsWritten := fb.savesOf(backend.PackFile)
	if packsWritten == 0 || fb.savesOf(backend.IndexFile) != 0 {
		t.Fatalf("setup: %d packs and %d index files written", packsWritten, fb.savesOf(backend.IndexFile))
	}

	after := newFaulty(base)
	r2, err := OpenWithOptions(ctx, after, testPassword, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	st := r2.Stats()
	if st.UnindexedPacks != packsWritten {
		t.Fatalf("open found %d unindexed packs, %d were written", st.UnindexedPacks, packsWritten)
	}
	recovered := 0
	for i, id := range ids {
		if !r2.HasBlob(DataBlob, id) {
			continue
		}
		recovered++
		stored, err := r2.SaveBlobWithID(ctx, DataBlob, id, randomBlob(uint64(i), 20000))
		if err != nil || stored {
			t.Fatalf("blob %d from a recovered pack: stored again=%v err=%v", i, stored, err)
		}
		if _, err := r2.LoadBlob(ctx, DataBlob, id); err != nil {
			t.Fatalf("blob %d from a recovered pack: %v", i, err)
		}
	}
	if recovered == 0 {
		t.Fatal("no blob recovered")
	}
	lock, err := r2.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lock.Unlock(ctx)
	if after.savesOf(backend.PackFile) != 0 {
		t.Fatalf("%d packs uploaded again", after.savesOf(backend.PackFile))
	}
	if n := reopen(t, base).Stats().UnindexedPacks; n != 0 {
		t.Fatalf("after a locked Flush, %d packs still unindexed", n)
	}
	assertClean(t, reopen(t, base))
}

// Many goroutines save overlapping blobs at once (run with -race): each
// distinct blob is stored exactly once and all read back.
func TestConcurrentSaveBlob(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	const workers, perWorker, distinct = 8, 60, 150
	var wg sync.WaitGroup
	var mu sync.Mutex
	storedCount := make(map[ID]int)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				seed := uint64((w*perWorker/2 + i) % distinct) // workers overlap
				id, stored, err := r.SaveBlob(ctx, DataBlob, randomBlob(seed, 3000+int(seed)*50))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if stored {
					storedCount[id]++
				} else if _, ok := storedCount[id]; !ok {
					storedCount[id] = 0
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range storedCount {
		if n != 1 {
			t.Fatalf("blob %s reported stored %d times", id.Short(), n)
		}
	}
	r2 := reopen(t, be)
	if got := r2.Stats().Blobs; got != len(storedCount) {
		t.Fatalf("index has %d blobs, want %d", got, len(storedCount))
	}
	for id := range storedCount {
		if _, err := r2.LoadBlob(ctx, DataBlob, id); err != nil {
			t.Fatal(err)
		}
	}
}
