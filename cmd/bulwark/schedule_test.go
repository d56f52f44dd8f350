package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/schedule"
)

// A controller with a backup schedule, end to end: the real binary takes
// hot backups of its own site through its API into a local repository,
// copies them to an off-site one, and reports both in GET /api/v1/backups
// and /metrics.
func TestControllerScheduledBackupsAndCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a controller and its scheduled backups")
	}
	e := newBackupEnv(t)
	const offsitePassword = "another password"
	offsite := filepath.Join(e.dir, "offsite")
	initRepoAt(t, offsite, offsitePassword)
	pwFile := func(name, pw string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, base := startServing(t, e.site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false",
		"--backup-repo", e.repo, "--backup-password-file", pwFile("pw", backupPassword), "--backup-interval", "1s",
		"--backup-keep-last", "5",
		"--offsite-repo", offsite, "--offsite-password-file", pwFile("offsite-pw", offsitePassword))

	var st schedule.Status
	deadline := time.Now().Add(60 * time.Second)
	for st.Offsite == nil || st.Offsite.LastSuccess.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no good off-site copy reported; last status %+v, off-site %+v", st, st.Offsite)
		}
		got, err := fetchBackups(context.Background(), base, "site-token")
		if err != nil {
			t.Fatal(err)
		}
		st = *got
		time.Sleep(50 * time.Millisecond)
	}
	if st.Local.LastSuccess.IsZero() || st.Local.Bytes == 0 || st.Local.AgeSeconds < 0 || st.IntervalSeconds != 1 {
		t.Errorf("local status = %+v", st.Local)
	}

	snaps := e.snapshots()
	if len(snaps) == 0 || snaps[0].Kind != "hot" || !strings.Contains(strings.Join(snaps[0].Tags, ","), scheduledTag) {
		t.Fatalf("local snapshots = %+v, want scheduled hot ones", snaps)
	}
	out, stderr, code := e.runWith([]string{"BULWARK_REPOSITORY=" + offsite, "BULWARK_PASSWORD=" + offsitePassword}, "--json", "snapshots")
	if code != 0 {
		t.Fatalf("off-site snapshots: exit %d: %s", code, stderr)
	}
	var copied []snapshotView
	if err := json.Unmarshal([]byte(out), &copied); err != nil {
		t.Fatal(err)
	}
	if !hasSnapshot(copied, st.Offsite.Snapshot) {
		t.Errorf("off-site repository lacks snapshot %s it was reported to hold: %+v", st.Offsite.Snapshot, copied)
	}

	// The status needs the token; the metrics are for Prometheus.
	if resp, err := http.Get(base + "/api/v1/backups"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status without a token: %v %v", resp, err)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bulwark_backup_age_seconds{target="offsite"}`, `bulwark_backup_runs_total{result="success",target="local"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

func hasSnapshot(snaps []snapshotView, id string) bool {
	for _, s := range snaps {
		if s.ID == id {
			return true
		}
	}
	return false
}

// initRepoAt creates a repository with a cheap key derivation, as
// backupEnv.initRepo does.
func initRepoAt(t *testing.T, dir, password string) {
	t.Helper()
	be, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	opts := repository.Options{KDF: repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}}
	if _, err := repository.InitWithOptions(context.Background(), be, password, opts); err != nil {
		t.Fatal(err)
	}
}

func TestPrintBackups(t *testing.T) {
	var out strings.Builder
	st := &schedule.Status{
		IntervalSeconds: 3600,
		Local:           schedule.TargetStatus{AgeSeconds: 90, Snapshot: "4f2a1c9e0011", Bytes: 3 << 20, DurationSeconds: 1.5},
		Offsite:         &schedule.TargetStatus{AgeSeconds: -1, LastError: "off-site: connection refused", ConsecutiveFailures: 2},
	}
	if err := printBackups(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backups (every 1h0m0s)", "local", "1m30s ago", "4f2a1c9e ", "3.0 MiB", "offsite", "never", "connection refused"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// With --backup-prune-every, the schedule frees what forgotten snapshots
// alone held: a file removed from the site leaves the repository once no
// kept snapshot has it.
func TestScheduledPruneFreesForgottenData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a controller and its scheduled backups")
	}
	e := newBackupEnv(t)
	pw := filepath.Join(e.dir, "pw")
	if err := os.WriteFile(pw, []byte(backupPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startServing(t, e.site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false",
		"--backup-repo", e.repo, "--backup-password-file", pw, "--backup-interval", "500ms",
		"--backup-keep-last", "1", "--backup-prune-every", "1ms")
	waitFor := func(what string, ok func(size int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			size := dirSize(t, filepath.Join(e.repo, "data"))
			if ok(size) {
				return size
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the repository's data is %d bytes after 60 s", what, size)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// data/weights.bin is 6 MiB of random bytes: backed up, it is most of
	// the repository.
	full := waitFor("first backup", func(size int64) bool { return size > 5<<20 })
	if err := os.Remove(filepath.Join(e.site, "data", "weights.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor("prune after the file left the site", func(size int64) bool { return size < full-(5<<20) })
	if snaps := e.snapshots(); len(snaps) != 1 {
		t.Errorf("%d snapshots kept, want 1 (--backup-keep-last 1)", len(snaps))
	}
	e.mustRun("verify", "--read-data")
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
