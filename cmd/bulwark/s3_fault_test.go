//go:build chaos

package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// TestS3KilledMidBackup: the S3 server dies (SIGKILL) while a cold backup
// is uploading packs and comes back a few seconds later. The CLI's retry
// decorator has a fixed bound (retry.DefaultMaxElapsed, not settable from
// the command line), well above the outage, so the running backup rides it
// out and succeeds; the next backup completes too, the repository verifies
// with every pack read, and the restore equals the site.
//
// Run it with: go test -tags chaos -run TestS3KilledMidBackup -v ./cmd/bulwark
func TestS3KilledMidBackup(t *testing.T) {
	srv := s3test.Start(t)
	e := newBackupEnv(t)
	e.env = []string{"BULWARK_REPOSITORY=" + srv.Location("backups", "site-a"), "BULWARK_PASSWORD=" + backupPassword,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	e.mustRun("repo", "init")
	// Incompressible weights, enough for many packs: the kill lands while
	// uploads are in flight, not after the last one.
	for i := range 12 {
		e.write(filepath.Join("data", "shards", "shard-"+string(rune('a'+i))+".bin"), randomData(uint64(100+i), 8<<20))
	}

	cmd := e.command(nil, "backup", "--cold")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	packDir := filepath.Join(srv.Dir, "backups", "site-a", "data")
	waitFor(t, 2*time.Minute, "a pack object on the server", func() bool {
		select {
		case err := <-done:
			t.Fatalf("backup ended before any pack was seen (%v): %s", err, stderr.String())
		default:
		}
		return countFiles(packDir) > 0
	})
	packsAtKill := countFiles(packDir)
	srv.Kill()
	killedAt := time.Since(start)

	// The backup must still be running: it is waiting for the server, not
	// failing at the first refused connection.
	outage := time.NewTimer(3 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("backup gave up during a short outage (%v): %s", err, stderr.String())
	case <-outage.C:
	}
	srv.Restart()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backup after the server came back: %v\n%s", err, stderr.String())
		}
	case <-time.After(6 * time.Minute): // past retry.DefaultMaxElapsed: the retry bound was not kept
		_ = cmd.Process.Kill()
		t.Fatalf("backup still running 6 minutes after the restart: %s", stderr.String())
	}
	t.Logf("killed the server at %v with %d pack(s) stored; backup resumed and finished at %v",
		killedAt.Round(time.Millisecond), packsAtKill, time.Since(start).Round(time.Millisecond))

	e.write("data/after-outage.bin", randomData(999, 1<<20))
	e.backup("--cold")
	if got := len(e.snapshots()); got != 2 {
		t.Fatalf("%d snapshots after two backups, want 2", got)
	}
	e.mustRun("verify", "--read-data")
	target := filepath.Join(e.dir, "restored")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, siteFiles(t, target), siteFiles(t, e.site))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
