package backendtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

func testList(t *testing.T, be backend.Backend) {
	want := map[backend.FileType][]string{}
	sizes := map[string]int64{}
	for i, ft := range []backend.FileType{backend.KeyFile, backend.PackFile, backend.IndexFile, backend.SnapshotFile, backend.LockFile} {
		for j := range 3 {
			seed := uint64(10*i + j)
			name := randomName(seed)
			data := randomBytes(seed, 10*i+j)
			save(t, be, backend.Handle{Type: ft, Name: name}, data)
			want[ft] = append(want[ft], name)
			sizes[name] = int64(len(data))
		}
		slices.Sort(want[ft])
	}
	for ft, names := range want {
		var got []string
		err := be.List(context.Background(), ft, func(fi backend.FileInfo) error {
			if fi.Size != sizes[fi.Name] {
				t.Errorf("list %s: %s has size %d, want %d", ft, fi.Name, fi.Size, sizes[fi.Name])
			}
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			t.Fatalf("list %s = %v, want %v", ft, got, names)
		}
	}
}

func testListManyPacks(t *testing.T, be backend.Backend) {
	var want []string
	for i := range 120 {
		name := randomName(uint64(1000 + i))
		save(t, be, backend.Handle{Type: backend.PackFile, Name: name}, []byte{byte(i)})
		want = append(want, name)
	}
	slices.Sort(want)
	if got := listNames(t, be, backend.PackFile); !slices.Equal(got, want) {
		t.Fatalf("list data: got %d names, want the %d saved", len(got), len(want))
	}
}

func testListStops(t *testing.T, be backend.Backend) {
	for i := range 5 {
		save(t, be, backend.Handle{Type: backend.LockFile, Name: randomName(uint64(i))}, []byte("l"))
	}
	stop := errors.New("stop")
	calls := 0
	err := be.List(context.Background(), backend.LockFile, func(backend.FileInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List returned %v after %d calls, want fn's error after 1", err, calls)
	}
}

func testRemove(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.PackFile, Name: randomName(4)}
	keep := backend.Handle{Type: backend.PackFile, Name: randomName(5)}
	save(t, be, h, []byte("gone soon"))
	save(t, be, keep, []byte("stays"))
	if err := be.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(context.Background(), h); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("stat after remove: %v, want ErrNotFound", err)
	}
	if _, err := load(t, be, h, 0, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("load after remove: %v, want ErrNotFound", err)
	}
	if err := be.Remove(context.Background(), h); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("second remove: %v, want ErrNotFound", err)
	}
	if got := listNames(t, be, backend.PackFile); !slices.Equal(got, []string{keep.Name}) {
		t.Fatalf("list after remove = %v, want only %s", got, keep.Name)
	}
	// The name can be used again once removed.
	save(t, be, h, []byte("again"))
	if got := mustLoad(t, be, h); string(got) != "again" {
		t.Fatalf("reloaded %q", got)
	}
}

func testNotFound(t *testing.T, be backend.Backend) {
	ctx := context.Background()
	for _, h := range []backend.Handle{
		{Type: backend.ConfigFile},
		{Type: backend.PackFile, Name: randomName(6)},
		{Type: backend.SnapshotFile, Name: randomName(7)},
	} {
		called := false
		err := be.Load(ctx, h, 0, 0, func(io.Reader) error { called = true; return nil })
		if !errors.Is(err, backend.ErrNotFound) || called {
			t.Fatalf("load missing %v: err = %v, fn called %v", h, err, called)
		}
		if backend.IsRetryable(err) {
			t.Fatalf("load missing %v: not-found marked retryable", h)
		}
		if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("stat missing %v: %v", h, err)
		}
		if err := be.Remove(ctx, h); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("remove missing %v: %v", h, err)
		}
	}
	if names := listNames(t, be, backend.IndexFile); len(names) != 0 {
		t.Fatalf("empty backend lists %v", names)
	}
}

func testExists(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.KeyFile, Name: randomName(8)}
	save(t, be, h, []byte("first"))
	err := be.Save(context.Background(), h, bytes.NewReader([]byte("second!")), 7)
	if !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second save: %v, want ErrExists", err)
	}
	if backend.IsRetryable(err) {
		t.Fatal("ErrExists marked retryable")
	}
	if got := mustLoad(t, be, h); string(got) != "first" {
		t.Fatalf("content after refused overwrite = %q, want %q", got, "first")
	}
}

func testShortReader(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.PackFile, Name: randomName(9)}
	err := be.Save(context.Background(), h, bytes.NewReader(make([]byte, 10)), 20)
	if err == nil {
		t.Fatal("save of 10 bytes announced as 20 succeeded")
	}
	assertAbsent(t, be, h)
}

func testLongReader(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.PackFile, Name: randomName(10)}
	err := be.Save(context.Background(), h, bytes.NewReader(make([]byte, 30)), 20)
	if err == nil {
		t.Fatal("save of 30 bytes announced as 20 succeeded")
	}
	assertAbsent(t, be, h)
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailingReader(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.IndexFile, Name: randomName(11)}
	boom := errors.New("disk on fire")
	err := be.Save(context.Background(), h, &failingReader{data: make([]byte, 100), err: boom}, 1000)
	if err == nil {
		t.Fatal("save with a failing reader succeeded")
	}
	assertAbsent(t, be, h)
}

func testInvalidHandle(t *testing.T, be backend.Backend) {
	ctx := context.Background()
	for _, h := range []backend.Handle{
		{Type: backend.PackFile, Name: ""},
		{Type: backend.PackFile, Name: "../escape"},
		{Type: backend.IndexFile, Name: "a/b"},
		{Type: backend.IndexFile, Name: ".hidden"},
		{Type: "bogus", Name: "abc"},
	} {
		err := be.Save(ctx, h, bytes.NewReader([]byte("x")), 1)
		if !errors.Is(err, backend.ErrInvalidHandle) {
			t.Fatalf("save %q/%q: err = %v, want ErrInvalidHandle", h.Type, h.Name, err)
		}
	}
}
