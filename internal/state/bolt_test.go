package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func populate(t *testing.T, s Store, payload int) {
	t.Helper()
	ctx := context.Background()
	for i, name := range []string{"web", "api", "batch"} {
		data := bytes.Repeat([]byte{byte('a' + i)}, payload)
		_, err := s.Apply(ctx, Change{Record: Record{Name: name, Revision: 1, Data: data},
			Revision: &Revision{Number: 1, Data: data}, Events: []Event{{Reason: "Applied"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutMeta(ctx, "replicas", []byte("r")); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// rawUpdate changes a closed state file behind the store's back.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func rawVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = readSchemaVersion(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

func newStateFile(t *testing.T, payload int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	populate(t, b, payload)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBoltReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	b := openTestBolt(t, path)
	populate(t, b, 100)
	want := dump(t, b)
	b.Close()
	if got := dump(t, openTestBolt(t, path)); got != want {
		t.Fatalf("after reopen:\n%s\nwant\n%s", got, want)
	}
}

func TestBoltSchemaVersionWritten(t *testing.T) {
	path := newStateFile(t, 10)
	if v := rawVersion(t, path); v != SchemaVersion() || v != 1 {
		t.Fatalf("schema version %d, want %d", v, SchemaVersion())
	}
}

func TestBoltNewerSchemaRefused(t *testing.T) {
	path := newStateFile(t, 10)
	rawUpdate(t, path, func(tx *bolt.Tx) error { return writeSchemaVersion(tx, SchemaVersion()+1) })
	before := fileSum(t, path)
	_, err := OpenBolt(path, BoltOptions{})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d is newer", SchemaVersion()+1)) {
		t.Fatalf("err = %v", err)
	}
	if fileSum(t, path) != before {
		t.Fatal("the refused file was modified")
	}
}

func TestBoltMigration(t *testing.T) {
	path := newStateFile(t, 10)
	defer func(m []migration) { migrations = m }(migrations)
	migrations = append(migrations[:len(migrations):len(migrations)], func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("v2"))
		return err
	})
	b := openTestBolt(t, path)
	if err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("v2")) == nil {
			return errors.New("migration did not run")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if v := rawVersion(t, path); v != 2 {
		t.Fatalf("migrated to %d, want 2", v)
	}
	if v := rawVersion(t, path+".schema-v1.bak"); v != 1 {
		t.Fatalf("backup has version %d, want 1", v)
	}
}

func TestBoltFailedMigrationChangesNothing(t *testing.T) {
	path := newStateFile(t, 10)
	defer func(m []migration) { migrations = m }(migrations)
	migrations = append(migrations[:len(migrations):len(migrations)],
		func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("v2")); return err },
		func(tx *bolt.Tx) error { return errors.New("boom") })
	if _, err := OpenBolt(path, BoltOptions{}); err == nil || !strings.Contains(err.Error(), "migrate schema 2 to 3: boom") {
		t.Fatalf("err = %v", err)
	}
	if v := rawVersion(t, path); v != 1 {
		t.Fatalf("a failed migration left version %d", v)
	}
}

// assertCorrupt opens a damaged file and checks the error and that the
// file is byte for byte what it was.
func assertCorrupt(t *testing.T, path string, detail string) {
	t.Helper()
	before := fileSum(t, path)
	_, err := OpenBolt(path, BoltOptions{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"state file " + path + " is corrupt: ", detail, recoveryHint} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not say %q", msg, want)
		}
	}
	if fileSum(t, path) != before {
		t.Fatal("the corrupt file was modified")
	}
}

func TestBoltGarbageFile(t *testing.T) {
	for _, size := range []int{5, 4096, 64 << 10} {
		path := filepath.Join(t.TempDir(), "state.db")
		garbage := make([]byte, size)
		for i := range garbage {
			garbage[i] = byte(rand.Uint32())
		}
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		assertCorrupt(t, path, "no valid bbolt header")
	}
}

func TestBoltTruncatedFile(t *testing.T) {
	path := newStateFile(t, 300<<10)
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	assertCorrupt(t, path, "file is truncated")
}

func TestBoltWrongMagic(t *testing.T) {
	path := newStateFile(t, 10)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{pageHeaderSize, int64(os.Getpagesize()) + pageHeaderSize} {
		f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, off)
	}
	f.Close()
	assertCorrupt(t, path, "no valid bbolt header")
}

// flipAll changes one byte in every copy of needle in the file (bbolt's
// free pages may hold stale copies) and returns the offsets.
func flipAll(t *testing.T, path string, needle []byte, at int) []int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for i := 0; ; {
		j := bytes.Index(data[i:], needle)
		if j < 0 {
			break
		}
		offs = append(offs, int64(i+j))
		i += j + 1
	}
	if len(offs) == 0 {
		t.Fatal("needle not in the file")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range offs {
		b := needle[at]
		if b == 'A' {
			b = 'B'
		} else {
			b = 'A'
		}
		if _, err := f.WriteAt([]byte{b}, off+int64(at)); err != nil {
			t.Fatal(err)
		}
	}
	return offs
}

func markerRecord(t *testing.T) (path string, encoded []byte) {
	path = filepath.Join(t.TempDir(), "state.db")
	b := openTestBolt(t, path)
	data := []byte(strings.Repeat("model marker ", 20))
	if _, err := b.Apply(context.Background(), Change{Record: Record{Name: "web", Data: data}}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return path, []byte(base64.StdEncoding.EncodeToString(data))
}

func TestBoltFlippedValueByte(t *testing.T) {
	path, needle := markerRecord(t)
	flipAll(t, path, needle, 40)
	assertCorrupt(t, path, "deployments/web: checksum mismatch")
}

func TestBoltDamagedPageHeader(t *testing.T) {
	path, needle := markerRecord(t)
	data, _ := os.ReadFile(path)
	ps := int64(os.Getpagesize())
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	for i := 0; ; {
		j := bytes.Index(data[i:], needle)
		if j < 0 {
			break
		}
		page := int64(i+j) / ps * ps
		f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, page) // the page id
		i += j + 1
	}
	f.Close()
	assertCorrupt(t, path, "")
}

// TestBoltCorruptValueWhileOpen: damage that appears after open (a bad
// sector) is reported on read with the key, never returned as data.
func TestBoltCorruptValueWhileOpen(t *testing.T) {
	path, needle := markerRecord(t)
	b := openTestBolt(t, path)
	flipAll(t, path, needle, 40) // bbolt's map is shared, so it sees this
	_, err := b.Get(context.Background(), "web")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "deployments/web: checksum mismatch") {
		t.Fatalf("get = %v", err)
	}
	if _, err := b.List(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("list = %v", err)
	}
}

func TestBoltForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	rawUpdate(t, path, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
	assertCorrupt(t, path, `not a bulwark state file: it has a bucket "users"`)
}

func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openTestBolt(t, path)
	start := time.Now()
	_, err := OpenBolt(path, BoltOptions{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "state file "+path+" is in use by another controller (pid unknown)") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v to give up", d)
	}
}

func TestBoltEmptyFileStartsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if list, err := openTestBolt(t, path).List(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestBoltNotAFile(t *testing.T) {
	_, err := OpenBolt(t.TempDir(), BoltOptions{})
	if err == nil || errors.Is(err, ErrCorrupt) {
		t.Fatalf("opening a directory: %v", err)
	}
}
