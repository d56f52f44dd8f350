package archiver_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// BenchmarkColdBackup is a first backup of a site holding 256 MiB of
// float32 weights (normally distributed, as trained weights are) into a
// new local repository: throughput (MB/s) and the peak heap seen by a
// sampler every 10ms (MB).
//
//	go test -run '^$' -bench ColdBackup -benchtime 3x ./internal/archiver
func BenchmarkColdBackup(b *testing.B) {
	site := filepath.Join(b.TempDir(), "site")
	size := int64(256 << 20)
	if err := writeWeights(filepath.Join(site, "models", "m", "1", "model.bin"), size); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	defer close(stop)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "repo")
		be, err := local.Create(dir)
		if err != nil {
			b.Fatal(err)
		}
		repo, err := repository.InitWithOptions(ctx, be, "pw", repository.Options{KDF: repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		be.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}

// writeWeights writes n bytes of float32 values from a normal
// distribution, streaming.
func writeWeights(path string, n int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for written := int64(0); written < n; written += int64(len(buf)) {
		for i := 0; i < len(buf); i += 4 {
			bits := math.Float32bits(float32(r.NormFloat64() * 0.02))
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
