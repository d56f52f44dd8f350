package limit

import (
	"context"
	"fmt"
	"io"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Backend runs at most n operations of the wrapped backend at a time.
type Backend struct {
	be    backend.Backend
	slots chan struct{}
}

var _ backend.Backend = (*Backend)(nil)

// New wraps be; n < 1 is taken as 1.
func New(be backend.Backend, n int) *Backend {
	return &Backend{be: be, slots: make(chan struct{}, max(n, 1))}
}

// Unwrap returns the decorated backend.
func (b *Backend) Unwrap() backend.Backend { return b.be }

// Location is the wrapped backend's.
func (b *Backend) Location() string { return b.be.Location() }

// Close closes the wrapped backend; it takes no slot.
func (b *Backend) Close() error { return b.be.Close() }

// InUse reports how many slots are taken.
func (b *Backend) InUse() int { return len(b.slots) }

func (b *Backend) acquire(ctx context.Context, what string) error {
	// A context that has ended gets no slot, even if one is free.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for a backend slot: %w", what, ctx.Err())
	}
}

func (b *Backend) release() { <-b.slots }

// Save waits for a slot, then saves.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	if err := b.acquire(ctx, "save"); err != nil {
		return err
	}
	defer b.release()
	return b.be.Save(ctx, h, rd, size)
}

// Load waits for a slot and holds it while fn runs.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	if err := b.acquire(ctx, "load"); err != nil {
		return err
	}
	defer b.release()
	return b.be.Load(ctx, h, offset, length, fn)
}

// Stat waits for a slot, then stats.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := b.acquire(ctx, "stat"); err != nil {
		return backend.FileInfo{}, err
	}
	defer b.release()
	return b.be.Stat(ctx, h)
}

// List holds one slot for the whole listing.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := b.acquire(ctx, "list"); err != nil {
		return err
	}
	defer b.release()
	return b.be.List(ctx, t, fn)
}

// Remove waits for a slot, then removes.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := b.acquire(ctx, "remove"); err != nil {
		return err
	}
	defer b.release()
	return b.be.Remove(ctx, h)
}
