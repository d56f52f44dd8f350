package repository

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

// Throughput of the write and read paths, end to end through a backend:
//
//	go test -run XXX -bench 'SaveBlob|LoadBlob' -benchtime 512x ./internal/repository/
//
// Blobs are 1 MiB (a typical chunk of a model file) of float32 weights,
// which zstd cannot shrink, or of JSON-like text, which it can. The local
// backend writes into the test's temporary directory with fsync.

const benchBlobSize = 1 << 20

// cpuTime is the CPU time this process has used. The machine the numbers
// come from is shared, so besides wall-clock MB/s the benchmarks report
// MB per CPU-second, which other load disturbs much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakHeap samples the live heap every few milliseconds (runtime/metrics
// reads without stopping the world) until stop is closed, then reports
// the peak in MiB.
func peakHeap(b *testing.B) (stop func()) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done := make(chan struct{})
	finished := make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				finished <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		b.ReportMetric(float64(<-finished)/(1<<20), "peak-heap-MiB")
	}
}

func reportCPU(b *testing.B, start time.Duration, bytes int64) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(bytes)/1e6/used.Seconds(), "MB/cpu-s")
	}
}

func benchBackend(b *testing.B, kind string) backend.Backend {
	if kind == "mem" {
		return mem.New()
	}
	be, err := local.Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return be
}

func benchRepo(b *testing.B, be backend.Backend, packSize int) *Repository {
	opts := testOptions()
	opts.PackSize = packSize
	opts.IndexEvery = 0
	r, err := InitWithOptions(context.Background(), be, testPassword, opts)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkSaveBlob(b *testing.B) {
	weights := floatWeights(benchBlobSize)
	text := jsonLike(benchBlobSize)
	for _, c := range []struct {
		backend  string
		packSize int
		content  string
	}{
		{"mem", 16 << 20, "floats"},
		{"mem", 16 << 20, "json"},
		{"local", 4 << 20, "floats"},
		{"local", 16 << 20, "floats"},
		{"local", 64 << 20, "floats"},
		{"local", 16 << 20, "json"},
	} {
		name := fmt.Sprintf("%s/pack=%dMiB/%s", c.backend, c.packSize>>20, c.content)
		src := weights
		if c.content == "json" {
			src = text
		}
		b.Run(name, func(b *testing.B) {
			r := benchRepo(b, benchBackend(b, c.backend), c.packSize)
			ctx := context.Background()
			var next atomic.Int64
			b.SetBytes(benchBlobSize)
			b.ResetTimer()
			start := cpuTime()
			stopHeap := peakHeap(b)
			var wg sync.WaitGroup
			// As many savers as cores, like the archiver's workers.
			for range runtime.GOMAXPROCS(0) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, len(src))
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						copy(buf, src)
						binary.LittleEndian.PutUint64(buf, uint64(i)) // unique blob
						if _, _, err := r.SaveBlob(ctx, DataBlob, buf); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			reportCPU(b, start, int64(b.N)*benchBlobSize)
			stopHeap()
		})
	}
}

func BenchmarkLoadBlob(b *testing.B) {
	for _, kind := range []string{"mem", "local"} {
		b.Run(kind, func(b *testing.B) {
			r := benchRepo(b, benchBackend(b, kind), DefaultPackSize)
			ctx := context.Background()
			const blobs = 64
			ids := make([]ID, blobs)
			src := floatWeights(benchBlobSize)
			for i := range ids {
				binary.LittleEndian.PutUint64(src, uint64(i))
				id, _, err := r.SaveBlob(ctx, DataBlob, src)
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetBytes(benchBlobSize)
			b.ResetTimer()
			start := cpuTime()
			var wg sync.WaitGroup
			for range runtime.GOMAXPROCS(0) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := r.LoadBlob(ctx, DataBlob, ids[i%blobs]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			reportCPU(b, start, int64(b.N)*benchBlobSize)
		})
	}
}
