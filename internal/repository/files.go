package repository

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// loadFile reads a whole stored file, refusing one larger than limit (a
// hostile or damaged repository must not make us allocate without bound).
func loadFile(ctx context.Context, be backend.Backend, h backend.Handle, limit int64) ([]byte, error) {
	var data []byte
	err := be.Load(ctx, h, 0, 0, func(r io.Reader) error {
		b, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("%s is larger than %d bytes: %w", h, limit, ErrCorrupt)
		}
		data = b
		return nil
	})
	return data, err
}

// loadRange reads length bytes at offset.
func loadRange(ctx context.Context, be backend.Backend, h backend.Handle, offset, length int64) ([]byte, error) {
	buf := make([]byte, length)
	err := be.Load(ctx, h, offset, length, func(r io.Reader) error {
		_, err := io.ReadFull(r, buf)
		return err
	})
	return buf, err
}

func saveBytes(ctx context.Context, be backend.Backend, h backend.Handle, data []byte) error {
	return be.Save(ctx, h, bytes.NewReader(data), int64(len(data)))
}

// listNames returns the names of all files of a type.
func listNames(ctx context.Context, be backend.Backend, t backend.FileType) (map[string]int64, error) {
	names := make(map[string]int64)
	err := be.List(ctx, t, func(fi backend.FileInfo) error {
		names[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	return names, nil
}
