package repository

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend/local"
)

const helperDirEnv = "BULWARK_TEST_BACKUP_HELPER_DIR"

// killedBackupBlobs is the blob sequence the helper process saves.
func killedBackupBlob(i int) []byte { return randomBlob(uint64(5000+i), 20000) }

func killedOptions() Options {
	o := testOptions()
	o.Host = "" // this machine's name: the killed holder's lock is found stale by its pid
	return o
}

// TestHelperBackupProcess is not a test: it is the backup process that
// TestKilledBackupLeavesUsableRepository starts and kills.
func TestHelperBackupProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	ctx := context.Background()
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenWithOptions(ctx, be, testPassword, killedOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, _, err := r.SaveBlob(ctx, DataBlob, killedBackupBlob(i)); err != nil {
			t.Fatal(err)
		}
		if i > 5000 {
			select {} // wait for the kill
		}
	}
}

// A backup process is SIGKILLed in the middle of its work on a real
// directory. Afterwards the repository checks clean, the killed holder's
// lock is recognised as stale at once (its pid is gone), and the next
// backup of the same data uploads none of the packs that were finished.
func TestKilledBackupLeavesUsableRepository(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	ctx := context.Background()
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitWithOptions(ctx, be, testPassword, killedOptions()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBackupProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countPacks(t, dir) < 7 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the backup process wrote no packs in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want killed", err)
	}
	packsAtKill := countPacks(t, dir)

	r, err := OpenWithOptions(ctx, be, testPassword, killedOptions())
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Packs != packsAtKill {
		t.Fatalf("open knows %d packs, %d on disk", st.Packs, packsAtKill)
	}
	// The killed process still has a lock file; an exclusive lock works
	// anyway because its pid is gone.
	lock, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	lock.Unlock(ctx)

	lock, err = r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	known := st.Blobs
	deduplicated := 0
	for i := 0; deduplicated < known; i++ {
		data := killedBackupBlob(i)
		had := r.HasBlob(DataBlob, Hash(data))
		_, stored, err := r.SaveBlob(ctx, DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		if had && stored {
			t.Fatalf("blob %d was in a finished pack and was stored again", i)
		}
		if !had {
			continue
		}
		deduplicated++
		if i > 10000 {
			t.Fatal("not all known blobs came up again")
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	lock.Unlock(ctx)
	rep := mustCheck(t, r, CheckOptions{ReadData: true})
	if len(rep.Problems) != 0 {
		t.Fatalf("check after the kill: %+v", rep.Problems)
	}
	if rep.UnindexedPacks != 0 {
		t.Fatalf("%d packs still unindexed after the next backup's Flush", rep.UnindexedPacks)
	}
}

func countPacks(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name()[0] != '.' {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
