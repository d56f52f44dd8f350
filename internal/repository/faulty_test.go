package repository

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

var errInjected = errors.New("injected failure")

// faulty wraps a backend and fails mutating calls on demand, the way a
// crash or a full disk would stop a process between two steps.
type faulty struct {
	backend.Backend
	mu sync.Mutex
	// failAfter: the number of mutations (Save, Remove) allowed before
	// every later one fails; negative: never fail.
	failAfter int
	mutations int
	// failSave, when set, decides per Save whether it fails.
	failSave func(h backend.Handle) bool
	saves    map[backend.FileType]int
}

func newFaulty(be backend.Backend) *faulty {
	return &faulty{Backend: be, failAfter: -1, saves: make(map[backend.FileType]int)}
}

func (f *faulty) mutate() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAfter >= 0 && f.mutations >= f.failAfter {
		return errInjected
	}
	f.mutations++
	return nil
}

func (f *faulty) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	f.mu.Lock()
	fail := f.failSave != nil && f.failSave(h)
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	// Lock files are not steps of the algorithms under test.
	if h.Type != backend.LockFile {
		if err := f.mutate(); err != nil {
			return err
		}
	}
	err := f.Backend.Save(ctx, h, rd, size)
	if err == nil {
		f.mu.Lock()
		f.saves[h.Type]++
		f.mu.Unlock()
	}
	return err
}

func (f *faulty) Remove(ctx context.Context, h backend.Handle) error {
	if h.Type != backend.LockFile {
		if err := f.mutate(); err != nil {
			return err
		}
	}
	return f.Backend.Remove(ctx, h)
}

func (f *faulty) savesOf(t backend.FileType) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saves[t]
}

func (f *faulty) setFailAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAfter = n
	f.mutations = 0
}
