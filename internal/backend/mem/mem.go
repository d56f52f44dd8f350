package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Mem is an in-memory backend. The zero value is not usable; call New.
type Mem struct {
	mu    sync.Mutex
	files map[backend.Handle][]byte
}

var _ backend.Backend = (*Mem)(nil)

// New returns an empty in-memory backend.
func New() *Mem {
	return &Mem{files: make(map[backend.Handle][]byte)}
}

// Location implements backend.Backend.
func (m *Mem) Location() string { return "mem:" }

// Save implements backend.Backend.
func (m *Mem) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if size < 0 {
		return fmt.Errorf("save %s: negative size %d", h, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	// Read everything before taking the lock: the file appears whole or
	// not at all.
	data := make([]byte, size)
	n, err := io.ReadFull(rd, data)
	if err == io.ErrUnexpectedEOF || err == io.EOF && size > 0 {
		return fmt.Errorf("save %s: reader gave %d bytes, want %d", h, n, size)
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("save %s: read: %w", h, err)
	}
	var extra [1]byte
	if m, _ := io.ReadFull(rd, extra[:]); m > 0 {
		return fmt.Errorf("save %s: reader has more than %d bytes", h, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[h]; ok {
		return fmt.Errorf("save %s: %w", h, backend.ErrExists)
	}
	m.files[h] = data
	return nil
}

// Load implements backend.Backend.
func (m *Mem) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("load %s: negative offset %d or length %d", h, offset, length)
	}
	m.mu.Lock()
	data, ok := m.files[h]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("load %s: %w", h, backend.ErrNotFound)
	}
	size := int64(len(data))
	if length == 0 {
		length = size - offset
	}
	if offset > size || offset+length > size {
		return fmt.Errorf("load %s: range %d+%d of %d bytes: %w", h, offset, length, size, backend.ErrShortFile)
	}
	// Stored slices are never modified after Save, so readers need no copy.
	return fn(bytes.NewReader(data[offset : offset+length]))
}

// Stat implements backend.Backend.
func (m *Mem) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.files[h]
	if !ok {
		return backend.FileInfo{}, fmt.Errorf("stat %s: %w", h, backend.ErrNotFound)
	}
	return backend.FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

// List implements backend.Backend.
func (m *Mem) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	m.mu.Lock()
	var infos []backend.FileInfo
	for h, data := range m.files {
		if h.Type == t {
			infos = append(infos, backend.FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	m.mu.Unlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements backend.Backend.
func (m *Mem) Remove(ctx context.Context, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[h]; !ok {
		return fmt.Errorf("remove %s: %w", h, backend.ErrNotFound)
	}
	delete(m.files, h)
	return nil
}

// Close implements backend.Backend.
func (m *Mem) Close() error { return nil }

// Corrupt applies change to the stored bytes of h (a copy), for tests that
// damage a repository the way a failing disk would. It reports whether the
// file existed.
func (m *Mem) Corrupt(h backend.Handle, change func([]byte) []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.files[h]
	if !ok {
		return false
	}
	m.files[h] = change(bytes.Clone(data))
	return true
}
