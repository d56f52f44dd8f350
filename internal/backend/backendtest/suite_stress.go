package backendtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

func testEmptyObject(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.SnapshotFile, Name: randomName(12)}
	save(t, be, h, nil)
	fi, err := be.Stat(context.Background(), h)
	if err != nil || fi.Size != 0 {
		t.Fatalf("stat empty file = %+v, %v", fi, err)
	}
	if got := mustLoad(t, be, h); len(got) != 0 {
		t.Fatalf("empty file loaded %d bytes", len(got))
	}
}

func testLargeObject(t *testing.T, be backend.Backend) {
	size := 24 << 20 // larger than a pack (16 MiB) and than usual multipart part sizes
	if testing.Short() {
		size = 6 << 20
	}
	h := backend.Handle{Type: backend.PackFile, Name: randomName(13)}
	data := randomBytes(13, size)
	save(t, be, h, data)
	if got := mustLoad(t, be, h); !bytes.Equal(got, data) {
		t.Fatalf("large object: loaded %d bytes differ from the %d saved", len(got), len(data))
	}
	off, n := int64(size/2-12345), int64(3<<20)
	got, err := load(t, be, h, off, n)
	if err != nil || !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("range of the large object: %d bytes, %v", len(got), err)
	}
}

func testConcurrentSaves(t *testing.T, be backend.Backend) {
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(uint64(200+i), 10000+i)
			h := backend.Handle{Type: backend.PackFile, Name: randomName(uint64(200 + i))}
			errs[i] = be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent save %d: %v", i, err)
		}
	}
	for i := range n {
		h := backend.Handle{Type: backend.PackFile, Name: randomName(uint64(200 + i))}
		if got := mustLoad(t, be, h); !bytes.Equal(got, randomBytes(uint64(200+i), 10000+i)) {
			t.Fatalf("concurrent save %d: content differs", i)
		}
	}
	if got := listNames(t, be, backend.PackFile); len(got) != n {
		t.Fatalf("list after concurrent saves: %d names, want %d", len(got), n)
	}
}

// testConcurrentSameName: saves racing for one name. At least one wins, a
// loser gets ErrExists (never a mix of contents), and what is stored is
// exactly one of the candidates.
func testConcurrentSameName(t *testing.T, be backend.Backend) {
	const n = 8
	h := backend.Handle{Type: backend.LockFile, Name: randomName(14)}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(uint64(300+i), 100000)
			errs[i] = be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data)))
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, backend.ErrExists):
		default:
			t.Fatalf("racing save %d: %v", i, err)
		}
	}
	if ok == 0 {
		t.Fatal("no racing save succeeded")
	}
	got := mustLoad(t, be, h)
	for i := range n {
		if bytes.Equal(got, randomBytes(uint64(300+i), 100000)) {
			return
		}
	}
	t.Fatal("stored content is none of the racing saves' (a mix?)")
}

func testContextCancelled(t *testing.T, be backend.Backend) {
	h := backend.Handle{Type: backend.PackFile, Name: randomName(15)}
	save(t, be, h, []byte("present"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fresh := backend.Handle{Type: backend.PackFile, Name: randomName(16)}
	if err := be.Save(ctx, fresh, bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("save with a cancelled context: %v", err)
	}
	assertAbsent(t, be, fresh)
	if err := be.Load(ctx, h, 0, 0, func(r io.Reader) error { _, err := io.ReadAll(r); return err }); !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context: %v", err)
	}
	if _, err := be.Stat(ctx, h); !errors.Is(err, context.Canceled) {
		t.Fatalf("stat with a cancelled context: %v", err)
	}
	if err := be.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("list with a cancelled context: %v", err)
	}
	if err := be.Remove(ctx, h); !errors.Is(err, context.Canceled) {
		t.Fatalf("remove with a cancelled context: %v", err)
	}
	if got := mustLoad(t, be, h); string(got) != "present" {
		t.Fatalf("file after cancelled remove: %q", got)
	}
}

// cancellingReader cancels its context after handing out part of the data,
// like a user pressing ^C in the middle of an upload.
type cancellingReader struct {
	data   []byte
	after  int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.after <= 0 {
		c.cancel()
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[:min(len(p), len(c.data), max(c.after, 1))])
	c.data = c.data[n:]
	c.after -= n
	return n, nil
}

func testCancelDuringSave(t *testing.T, be backend.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := backend.Handle{Type: backend.PackFile, Name: randomName(17)}
	data := randomBytes(17, 1<<20)
	err := be.Save(ctx, h, &cancellingReader{data: data, after: 64 << 10, cancel: cancel}, int64(len(data)))
	if err == nil {
		t.Fatal("save whose context was cancelled half way succeeded")
	}
	assertAbsent(t, be, h)
}
