package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Run runs the conformance suite; newBackend must return a fresh, empty
// backend each time it is called.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, be backend.Backend)
	}{
		{"SaveLoadEveryType", testSaveLoadEveryType},
		{"Config", testConfig},
		{"LoadRange", testLoadRange},
		{"LoadFnError", testLoadFnError},
		{"Stat", testStat},
		{"List", testList},
		{"ListManyPacks", testListManyPacks},
		{"ListStops", testListStops},
		{"Remove", testRemove},
		{"NotFound", testNotFound},
		{"Exists", testExists},
		{"ShortReader", testShortReader},
		{"LongReader", testLongReader},
		{"FailingReader", testFailingReader},
		{"InvalidHandle", testInvalidHandle},
		{"EmptyObject", testEmptyObject},
		{"LargeObject", testLargeObject},
		{"ConcurrentSaves", testConcurrentSaves},
		{"ConcurrentSameName", testConcurrentSameName},
		{"ContextCancelled", testContextCancelled},
		{"CancelDuringSave", testCancelDuringSave},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t)
			t.Cleanup(func() { be.Close() })
			tc.fn(t, be)
		})
	}
}

// randomBytes returns n bytes that differ per seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// randomName is a hex name like the repository uses (64 characters).
func randomName(seed uint64) string {
	return fmt.Sprintf("%x", randomBytes(seed, 32))
}

func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save %v: %v", h, err)
	}
}

func load(t *testing.T, be backend.Backend, h backend.Handle, offset, length int64) ([]byte, error) {
	t.Helper()
	var got []byte
	err := be.Load(context.Background(), h, offset, length, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func mustLoad(t *testing.T, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	got, err := load(t, be, h, 0, 0)
	if err != nil {
		t.Fatalf("load %v: %v", h, err)
	}
	return got
}

func assertAbsent(t *testing.T, be backend.Backend, h backend.Handle) {
	t.Helper()
	if _, err := be.Stat(context.Background(), h); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("stat %v after a failed save: err = %v, want ErrNotFound", h, err)
	}
	names := listNames(t, be, h.Type)
	if slices.Contains(names, h.Name) {
		t.Fatalf("list %s shows %q after a failed save", h.Type, h.Name)
	}
}

func listNames(t *testing.T, be backend.Backend, ft backend.FileType) []string {
	t.Helper()
	var names []string
	err := be.List(context.Background(), ft, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", ft, err)
	}
	slices.Sort(names)
	return names
}

func testSaveLoadEveryType(t *testing.T, be backend.Backend) {
	for i, ft := range backend.FileTypes {
		h := backend.Handle{Type: ft, Name: randomName(uint64(i))}
		if ft == backend.ConfigFile {
			h.Name = ""
		}
		data := randomBytes(uint64(100+i), 1000+i)
		save(t, be, h, data)
		if got := mustLoad(t, be, h); !bytes.Equal(got, data) {
			t.Fatalf("%v: loaded %d bytes differ from the %d saved", h, len(got), len(data))
		}
	}
}

func testConfig(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.ConfigFile}
	if names := listNames(t, be, backend.ConfigFile); len(names) != 0 {
		t.Fatalf("empty backend lists config %v", names)
	}
	save(t, be, h, []byte("config"))
	if names := listNames(t, be, backend.ConfigFile); !slices.Equal(names, []string{""}) {
		t.Fatalf("list config = %q, want one entry with an empty name", names)
	}
	err := be.Save(context.Background(), backend.Handle{Type: backend.ConfigFile, Name: "x"}, bytes.NewReader(nil), 0)
	if !errors.Is(err, backend.ErrInvalidHandle) {
		t.Fatalf("config handle with a name: err = %v, want ErrInvalidHandle", err)
	}
}

func testLoadRange(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.PackFile, Name: randomName(1)}
	data := randomBytes(1, 1000)
	save(t, be, h, data)
	for _, r := range []struct{ off, n int64 }{{0, 0}, {0, 1}, {0, 10}, {10, 0}, {500, 250}, {990, 10}, {999, 1}, {1000, 0}} {
		got, err := load(t, be, h, r.off, r.n)
		if err != nil {
			t.Fatalf("load %d+%d: %v", r.off, r.n, err)
		}
		end := r.off + r.n
		if r.n == 0 {
			end = int64(len(data))
		}
		if !bytes.Equal(got, data[r.off:end]) {
			t.Fatalf("load %d+%d: got %d bytes, not the stored range", r.off, r.n, len(got))
		}
	}
	for _, r := range []struct{ off, n int64 }{{995, 10}, {1001, 0}, {2000, 1}} {
		called := false
		err := be.Load(context.Background(), h, r.off, r.n, func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, backend.ErrShortFile) || called {
			t.Fatalf("load %d+%d of 1000 bytes: err = %v, fn called %v; want ErrShortFile before fn", r.off, r.n, err, called)
		}
	}
}

func testLoadFnError(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.IndexFile, Name: randomName(2)}
	save(t, be, h, []byte("index"))
	boom := errors.New("boom")
	if err := be.Load(context.Background(), h, 0, 0, func(io.Reader) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Load returned %v, want fn's error", err)
	}
}

func testStat(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.SnapshotFile, Name: randomName(3)}
	save(t, be, h, randomBytes(3, 4321))
	fi, err := be.Stat(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != 4321 || fi.Name != h.Name {
		t.Fatalf("stat = %+v, want name %s size 4321", fi, h.Name)
	}
}
