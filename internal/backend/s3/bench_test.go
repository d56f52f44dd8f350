package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// The benchmarks measure the backend against versitygw on loopback, with
// the default part size (16 MiB): a 64 MiB object goes up in four parts,
// a 16 MiB one (a repository pack) in one PUT.
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/backend/s3/

func benchBackend(b *testing.B, partSize int64) *s3.Backend {
	srv := s3test.Start(b)
	cfg := config(srv, "bench", "repo")
	cfg.PartSize = partSize
	return create(b, cfg)
}

func benchmarkSave(b *testing.B, size int, partSize int64) {
	be := benchBackend(b, partSize)
	data := randomData(99, size)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := range b.N {
		h := backend.Handle{Type: backend.PackFile, Name: fmt.Sprintf("%064x", i)}
		if err := be.Save(ctx, h, bytes.NewReader(data), int64(size)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkLoad(b *testing.B, size int) {
	be := benchBackend(b, 0)
	data := randomData(98, size)
	ctx := context.Background()
	h := backend.Handle{Type: backend.PackFile, Name: "ee00"}
	if err := be.Save(ctx, h, bytes.NewReader(data), int64(size)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		err := be.Load(ctx, h, 0, 0, func(r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSave64MiB(b *testing.B) { benchmarkSave(b, 64<<20, 0) }
func BenchmarkSave16MiB(b *testing.B) { benchmarkSave(b, 16<<20, 0) }

// BenchmarkSave64MiBOnePut sends the same object in a single PUT, to tell
// the cost of the multipart path apart.
func BenchmarkSave64MiBOnePut(b *testing.B) { benchmarkSave(b, 64<<20, 64<<20) }
func BenchmarkLoad64MiB(b *testing.B)       { benchmarkLoad(b, 64<<20) }
