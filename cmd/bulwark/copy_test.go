package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

const offsitePassword = "another site, another password"

// TestCopyToS3: the site's local repository is copied to an S3 bucket (a
// real versitygw) under another password; the copy restores the site
// byte for byte, and copying again sends nothing.
func TestCopyToS3(t *testing.T) {
	srv := s3test.Start(t) // skipped with -short when versitygw is missing
	e := newBackupEnv(t)
	first := e.backup("--cold")
	e.write("data/weights.bin", randomData(7, 3<<20))
	second := e.backup("--cold")

	offsite := []string{"BULWARK_REPOSITORY=" + srv.Location("offsite", "site-a"), "BULWARK_PASSWORD=" + offsitePassword,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	mustRunWith := func(env []string, args ...string) string {
		t.Helper()
		out, stderr, code := e.runWith(env, args...)
		if code != 0 {
			t.Fatalf("bulwark %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	copyJSON := func() repository.CopyReport {
		t.Helper()
		var r repository.CopyReport
		out := mustRunWith(append(offsite, "BULWARK_FROM_PASSWORD="+backupPassword), "--json", "copy", "--from", e.repo)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("copy output %q: %v", out, err)
		}
		return r
	}

	// A cheap key derivation, as newBackupEnv's: its parameters are in the
	// key file, so every command that opens the bucket is fast too.
	be, err := s3.Create(context.Background(), s3.Config{Location: srv.Location("offsite", "site-a"), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	opts := repository.Options{KDF: repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}}
	if _, err := repository.InitWithOptions(context.Background(), be, offsitePassword, opts); err != nil {
		t.Fatal(err)
	}
	be.Close()
	if _, stderr, code := e.runWith(append(offsite, "BULWARK_FROM_PASSWORD=wrong"), "copy", "--from", e.repo); code != exitWrongPassword {
		t.Fatalf("wrong source password: exit %d, %s", code, stderr)
	}

	report := copyJSON()
	if report.Snapshots != 2 || report.Skipped != 0 || report.Blobs == 0 || report.BytesCopied < 9<<20 {
		t.Fatalf("first copy %+v", report)
	}
	var views []snapshotView
	if err := json.Unmarshal([]byte(mustRunWith(offsite, "--json", "snapshots")), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].ID != first.ID || views[1].ID != second.ID {
		t.Fatalf("off-site snapshots %+v, want %s and %s", views, first.ShortID, second.ShortID)
	}

	target := filepath.Join(e.dir, "restored")
	mustRunWith(offsite, "restore", "latest", "--target", target)
	sameFiles(t, siteFiles(t, target), siteFiles(t, e.site))

	again := copyJSON()
	if again.Snapshots != 0 || again.Skipped != 2 || again.Blobs != 0 || again.BytesCopied != 0 {
		t.Fatalf("second copy %+v, want nothing sent", again)
	}
	text := mustRunWith(append(offsite, "BULWARK_FROM_PASSWORD="+backupPassword), "copy", "--from", e.repo, first.ShortID)
	if !strings.Contains(text, "skipped 1 already in the destination") || !strings.Contains(text, "sent 0 chunk(s)") {
		t.Fatalf("copy of a snapshot already there says:\n%s", text)
	}
}

// TestCopyErrors: a missing source, a copy onto itself and an unknown
// snapshot are refused with their own exit codes, and nothing is written.
func TestCopyErrors(t *testing.T) {
	e := newBackupEnv(t)
	e.backup("--cold")
	other := filepath.Join(e.dir, "other")
	e.repo = other // initRepo creates it; e.env still names the source
	e.initRepo()
	to := []string{"BULWARK_REPOSITORY=" + other, "BULWARK_FROM_PASSWORD=" + backupPassword}
	from := filepath.Join(e.dir, "repo")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"copy"}, exitUsage, "no source repository"},
		{[]string{"copy", "--from", other}, exitUsage, "same repository"},
		{[]string{"copy", "--from", from, "0123abcd"}, exitNotFound, "source snapshot 0123abcd"},
		{[]string{"copy", "--from", filepath.Join(e.dir, "nowhere")}, exitNotFound, "does not exist"},
	} {
		_, stderr, code := e.runWith(to, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("bulwark %s: exit %d, want %d saying %q:\n%s", strings.Join(c.args, " "), code, c.code, c.want, stderr)
		}
	}
	count := func() int {
		t.Helper()
		out, stderr, code := e.runWith(to, "--json", "snapshots")
		var vs []snapshotView
		if err := json.Unmarshal([]byte(out), &vs); code != 0 || err != nil {
			t.Fatalf("snapshots: exit %d, %v\n%s", code, err, stderr)
		}
		return len(vs)
	}
	if n := count(); n != 0 {
		t.Fatalf("a refused copy left %d snapshots", n)
	}
	// The same copy with nothing wrong works between two local directories.
	out, stderr, code := e.runWith(to, "copy", "--from", from)
	if code != 0 || !strings.Contains(out, "copied 1 snapshot(s)") {
		t.Fatalf("copy: exit %d\n%s%s", code, out, stderr)
	}
	if n := count(); n != 1 {
		t.Fatalf("destination has %d snapshots, want 1", n)
	}
}
