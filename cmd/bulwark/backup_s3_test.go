package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// TestS3Repository: the CLI backs a site up into an S3 bucket on a real
// S3-compatible server (versitygw), verifies and restores it; wrong
// credentials are a clear error at once.
func TestS3Repository(t *testing.T) {
	srv := s3test.Start(t) // skipped with -short when versitygw is missing
	e := newBackupEnv(t)
	e.env = []string{"BULWARK_REPOSITORY=" + srv.Location("backups", "site-a"), "BULWARK_PASSWORD=" + backupPassword,
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	e.mustRun("repo", "init")
	snap := e.backup("--cold")
	if snap.Kind != "cold" {
		t.Fatalf("snapshot %+v", snap)
	}
	e.mustRun("verify", "--read-data")
	target := filepath.Join(e.dir, "restored")
	e.mustRun("restore", "latest", "--target", target)
	for _, rel := range []string{"models/iris/1/model.onnx", "data/weights.bin", "admin-token"} {
		want, err := os.ReadFile(filepath.Join(e.site, rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(target, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restored from S3 differs (%v)", rel, err)
		}
	}
	// The same credentials from flags, with none in the environment.
	secretFile := filepath.Join(e.dir, "s3-secret")
	if err := os.WriteFile(secretFile, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := e.runWith([]string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="},
		"snapshots", "--s3-access-key", srv.AccessKey, "--s3-secret-key-file", secretFile); code != 0 {
		t.Fatalf("credentials from flags: exit %d, %s", code, stderr)
	}
	_, stderr, code := e.runWith([]string{"AWS_SECRET_ACCESS_KEY=wrong"}, "snapshots")
	if code == 0 || !bytes.Contains([]byte(stderr), []byte("authentication failed")) {
		t.Fatalf("wrong secret: exit %d, %s", code, stderr)
	}
}
