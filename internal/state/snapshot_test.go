package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCopyBoltIsAnOpenableCopy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTestBolt(t, path)
	populate(t, s, 3000)
	s.Close()
	before := fileSum(t, path)

	var buf bytes.Buffer
	n, err := CopyBolt(ctx, path, &buf, 0)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("copy = %d bytes (buffer %d), %v", n, buf.Len(), err)
	}
	if fileSum(t, path) != before {
		t.Fatal("copying modified the file")
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenBoltReadOnly(copyPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	list, err := ro.List(ctx)
	if err != nil || len(list) != 3 || list[0].Name != "api" || len(list[0].Data) != 3000 {
		t.Fatalf("list of the copy = %d records, %v", len(list), err)
	}
	if v, err := ro.Meta(ctx, "replicas"); err != nil || string(v) != "r" {
		t.Fatalf("meta of the copy = %q, %v", v, err)
	}
	if _, err := ro.Apply(ctx, Change{Record: Record{Name: "new"}}); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
}

func TestCopyBoltRefusesAFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTestBolt(t, path)
	populate(t, s, 10)
	_, err := CopyBolt(context.Background(), path, &bytes.Buffer{}, 50*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("copy of a file a controller holds: %v, want ErrLocked", err)
	}
	if _, err := OpenBoltReadOnly(path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open of a file a controller holds: %v, want ErrLocked", err)
	}
	// Once the controller is gone the same call succeeds.
	s.Close()
	if n, err := CopyBolt(context.Background(), path, &bytes.Buffer{}, 0); err != nil || n == 0 {
		t.Fatalf("copy after close = %d, %v", n, err)
	}
}

func TestCopyBoltRefusesDamageAndChangesNothing(t *testing.T) {
	path, needle := markerRecord(t)
	flipAll(t, path, needle, 40)
	before := fileSum(t, path)
	var buf bytes.Buffer
	_, err := CopyBolt(context.Background(), path, &buf, 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "deployments/web: checksum mismatch") {
		t.Fatalf("copy of a damaged file: %v", err)
	}
	if buf.Len() != 0 || fileSum(t, path) != before {
		t.Fatalf("a damaged file was copied (%d bytes) or changed", buf.Len())
	}
	if _, err := OpenBoltReadOnly(path, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only open of a damaged file: %v", err)
	}
}

func TestCopyBoltEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if n, err := CopyBolt(context.Background(), empty, &bytes.Buffer{}, 0); err != nil || n != 0 {
		t.Fatalf("copy of an empty file = %d, %v", n, err)
	}
	if _, err := OpenBoltReadOnly(empty, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only open of an empty file: %v", err)
	}
	if _, err := CopyBolt(context.Background(), filepath.Join(dir, "missing.db"), &bytes.Buffer{}, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("copy of a missing file: %v", err)
	}
}

func TestCopyBoltStopsWithItsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openTestBolt(t, path)
	populate(t, s, 10)
	s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyBolt(ctx, path, &bytes.Buffer{}, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("copy with a cancelled context: %v", err)
	}
}

// FuzzOpenBoltReadOnly: a state copy arrives from a controller over the
// network or from a backup; whatever its bytes, opening it read-only either
// fails with an error or gives a store whose reads work, and never
// crashes.
func FuzzOpenBoltReadOnly(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.db")
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"web", "api"} {
		if _, err := s.Apply(ctx, Change{Record: Record{Name: name, Revision: 1, Data: []byte(`{"spec":{}}`)},
			Revision: &Revision{Number: 1, Data: []byte("spec")}, Events: []Event{{Reason: "Applied"}}}); err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:8192])
	f.Add([]byte("not a bbolt file"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := OpenBoltReadOnly(p, 50*time.Millisecond)
		if err != nil {
			return
		}
		defer st.Close()
		recs, err := st.List(ctx)
		for _, r := range recs {
			st.Revisions(ctx, r.Name)
			st.Events(ctx, r.Name, 0)
		}
		_ = err
		var buf bytes.Buffer
		if _, err := CopyBolt(ctx, p, &buf, 50*time.Millisecond); err == nil && buf.Len() == 0 {
			t.Fatal("a file that opens copied as nothing")
		}
	})
}
