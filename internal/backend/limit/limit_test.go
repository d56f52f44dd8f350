package limit

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// gate is a backend whose operations block until released and which records
// the most operations it ever saw at once.
type gate struct {
	entered chan struct{}
	release chan struct{}
	now     atomic.Int64
	most    atomic.Int64
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) op() error {
	n := g.now.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	g.entered <- struct{}{}
	<-g.release
	g.now.Add(-1)
	return nil
}

func (g *gate) Location() string { return "gate:" }
func (g *gate) Close() error     { return nil }
func (g *gate) Save(context.Context, backend.Handle, io.Reader, int64) error {
	return g.op()
}
func (g *gate) Load(_ context.Context, _ backend.Handle, _, _ int64, fn func(io.Reader) error) error {
	if err := g.op(); err != nil {
		return err
	}
	return fn(strings.NewReader("data"))
}
func (g *gate) Stat(context.Context, backend.Handle) (backend.FileInfo, error) {
	return backend.FileInfo{}, g.op()
}
func (g *gate) List(_ context.Context, _ backend.FileType, fn func(backend.FileInfo) error) error {
	if err := g.op(); err != nil {
		return err
	}
	return fn(backend.FileInfo{Name: "x"})
}
func (g *gate) Remove(context.Context, backend.Handle) error { return g.op() }

func TestAtMostN(t *testing.T) {
	g := newGate()
	b := New(g, 3)
	ctx := context.Background()
	h := backend.Handle{Type: backend.PackFile, Name: "p"}
	ops := []func() error{
		func() error { return b.Save(ctx, h, strings.NewReader(""), 0) },
		func() error { return b.Load(ctx, h, 0, 0, func(io.Reader) error { return nil }) },
		func() error { _, err := b.Stat(ctx, h); return err },
		func() error { return b.List(ctx, backend.PackFile, func(backend.FileInfo) error { return nil }) },
		func() error { return b.Remove(ctx, h) },
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() { errs <- ops[i%len(ops)]() })
	}
	for range 3 {
		<-g.entered
	}
	if got := b.InUse(); got != 3 {
		t.Fatalf("%d slots in use, want 3", got)
	}
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most := g.most.Load(); most != 3 {
		t.Fatalf("at most %d operations ran at once, want exactly 3", most)
	}
	if b.InUse() != 0 {
		t.Fatalf("%d slots still held", b.InUse())
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	g := newGate()
	b := New(g, 1)
	h := backend.Handle{Type: backend.PackFile, Name: "p"}
	done := make(chan error)
	go func() { done <- b.Remove(context.Background(), h) }()
	<-g.entered // the only slot is taken

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error)
	go func() { _, err := b.Stat(ctx, h); waiting <- err }()
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	// An ended context gets no slot even when one is free.
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, h, strings.NewReader(""), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("save with a cancelled context: %v", err)
	}
	if g.most.Load() != 1 {
		t.Fatalf("%d ran at once, want 1", g.most.Load())
	}
}

func TestZeroMeansOne(t *testing.T) {
	b := New(newGate(), 0)
	if cap(b.slots) != 1 || b.Location() != "gate:" || b.Close() != nil {
		t.Fatal("n=0 should give one slot and pass through Location/Close")
	}
}
