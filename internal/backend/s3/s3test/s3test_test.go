package s3test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinaryLookup(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PATH", t.TempDir())
	t.Setenv("BULWARK_NO_INSTALL", "1") // no two-minute build into a temporary home

	t.Setenv(EnvBinary, filepath.Join(home, "missing"))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), EnvBinary) {
		t.Fatalf("a missing %s: %v", EnvBinary, err)
	}

	t.Setenv(EnvBinary, "")
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "go install github.com/versity/versitygw/cmd/versitygw@"+Version) {
		t.Fatalf("no binary anywhere: %v, want the install advice", err)
	}

	// The cache directory is the last place looked in.
	cached := filepath.Join(home, ".cache", "bulwark-test", "bin", "versitygw")
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Binary(); err != nil || got != cached {
		t.Fatalf("Binary() = %q, %v; want the cached %q", got, err, cached)
	}
	t.Setenv(EnvBinary, cached)
	if got, err := Binary(); err != nil || got != cached {
		t.Fatalf("with %s: %q, %v", EnvBinary, got, err)
	}
}

func TestStartKillRestart(t *testing.T) {
	srv := Start(t)
	if !strings.HasPrefix(srv.Location("b", "p"), "s3:http://127.0.0.1:") || !strings.HasSuffix(srv.Location("b", "p"), "/b/p") {
		t.Fatalf("location %s", srv.Location("b", "p"))
	}
	addr := srv.Addr
	srv.Kill()
	srv.Kill() // a second kill is a no-op
	srv.Restart()
	if srv.Addr != addr {
		t.Fatalf("restarted on %s, want the same %s", srv.Addr, addr)
	}
}
