package retry

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/backendtest"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New(mem.New(), Options{}) })
}

// TestConformanceOverFailures: with every third call of the backend below
// failing transiently (half of the failing saves and removes after doing
// their work, so only the answer is lost), the decorated backend still
// keeps the whole contract.
func TestConformanceOverFailures(t *testing.T) {
	var injected atomic.Int64
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		s := &sickly{Backend: mem.New(), every: 3, injected: &injected}
		return New(s, Options{InitialInterval: time.Microsecond, MaxInterval: time.Millisecond})
	})
	if injected.Load() == 0 {
		t.Fatal("no failure was injected")
	}
}

// sickly fails every n-th call with a retryable error.
type sickly struct {
	backend.Backend
	every    int64
	calls    atomic.Int64
	injected *atomic.Int64
}

var errSick = backend.Retryable(errors.New("injected 503"))

// fail reports whether this call fails, and if so whether after its work.
func (s *sickly) fail() (bool, bool) {
	n := s.calls.Add(1)
	if n%s.every != 0 {
		return false, false
	}
	s.injected.Add(1)
	return true, n%(2*s.every) == 0
}

func (s *sickly) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	fail, after := s.fail()
	if fail && !after {
		return errSick
	}
	err := s.Backend.Save(ctx, h, rd, size)
	if fail && err == nil {
		return errSick
	}
	return err
}

func (s *sickly) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	if fail, _ := s.fail(); fail {
		return errSick
	}
	return s.Backend.Load(ctx, h, offset, length, fn)
}

func (s *sickly) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if fail, _ := s.fail(); fail {
		return backend.FileInfo{}, errSick
	}
	return s.Backend.Stat(ctx, h)
}

func (s *sickly) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if fail, _ := s.fail(); fail {
		return errSick
	}
	return s.Backend.List(ctx, t, fn)
}

func (s *sickly) Remove(ctx context.Context, h backend.Handle) error {
	fail, after := s.fail()
	if fail && !after {
		return errSick
	}
	err := s.Backend.Remove(ctx, h)
	if fail && err == nil {
		return errSick
	}
	return err
}
