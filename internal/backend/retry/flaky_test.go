package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// flaky is an in-memory backend whose operations fail on demand. before
// runs ahead of each operation (with the 1-based call number of that
// operation) and may return an error that the call then returns; after
// runs once the operation did its work and may turn the result into an
// error too (a lost answer).
type flaky struct {
	mu     sync.Mutex
	files  map[backend.Handle][]byte
	calls  map[string]int
	before func(op string, call int) error
	after  func(op string, call int) error
	// listFailAfter makes a listing fail with a retryable error after it
	// delivered this many names, on its first call only.
	listFailAfter int
	// loadCut makes Load deliver only this many bytes, then a retryable
	// read error, on its first call only.
	loadCut int
}

func newFlaky() *flaky {
	return &flaky{files: make(map[backend.Handle][]byte), calls: make(map[string]int), listFailAfter: -1, loadCut: -1}
}

var errTransient = backend.Retryable(errors.New("503 slow down"))
var errPermanent = errors.New("access denied")

func (f *flaky) count(op string) (int, error) {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	before := f.before
	f.mu.Unlock()
	if before != nil {
		return n, before(op, n)
	}
	return n, nil
}

func (f *flaky) finish(op string, n int) error {
	if f.after != nil {
		return f.after(op, n)
	}
	return nil
}

func (f *flaky) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *flaky) Location() string { return "flaky:" }
func (f *flaky) Close() error     { return nil }

func (f *flaky) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	n, err := f.count("save")
	if err != nil {
		return err
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return fmt.Errorf("got %d bytes, want %d", len(data), size)
	}
	f.mu.Lock()
	if _, ok := f.files[h]; ok {
		f.mu.Unlock()
		return backend.ErrExists
	}
	f.files[h] = data
	f.mu.Unlock()
	return f.finish("save", n)
}

func (f *flaky) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	n, err := f.count("load")
	if err != nil {
		return err
	}
	f.mu.Lock()
	data, ok := f.files[h]
	f.mu.Unlock()
	if !ok {
		return backend.ErrNotFound
	}
	data = data[offset:]
	if length > 0 {
		data = data[:length]
	}
	var rd io.Reader = bytes.NewReader(data)
	if n == 1 && f.loadCut >= 0 {
		rd = io.MultiReader(bytes.NewReader(data[:f.loadCut]), errReader{backend.Retryable(io.ErrUnexpectedEOF)})
	}
	return fn(rd)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (f *flaky) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if _, err := f.count("stat"); err != nil {
		return backend.FileInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.files[h]
	if !ok {
		return backend.FileInfo{}, backend.ErrNotFound
	}
	return backend.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

func (f *flaky) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	n, err := f.count("list")
	if err != nil {
		return err
	}
	f.mu.Lock()
	var infos []backend.FileInfo
	for h, d := range f.files {
		if h.Type == t {
			infos = append(infos, backend.FileInfo{Name: h.Name, Size: int64(len(d))})
		}
	}
	f.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	for i, fi := range infos {
		if n == 1 && i == f.listFailAfter {
			return errTransient
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

func (f *flaky) Remove(ctx context.Context, h backend.Handle) error {
	n, err := f.count("remove")
	if err != nil {
		return err
	}
	f.mu.Lock()
	_, ok := f.files[h]
	delete(f.files, h)
	f.mu.Unlock()
	if !ok {
		return backend.ErrNotFound
	}
	return f.finish("remove", n)
}

// failFirst returns a hook failing the first k calls of op with err.
func failFirst(op string, k int, err error) func(string, int) error {
	return func(o string, n int) error {
		if o == op && n <= k {
			return err
		}
		return nil
	}
}
