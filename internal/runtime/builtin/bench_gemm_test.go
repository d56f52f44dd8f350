package builtin

import (
	"fmt"
	"math/rand"
	"testing"
)

// gemmLoopF32 is the plain i-p-j loop gemmF32 used to be; the benchmarks
// report the blocked kernel against it.
func gemmLoopF32(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		crow := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(crow)
		} else if beta != 1 {
			for j := range crow {
				crow[j] *= beta
			}
		}
		for p := 0; p < k; p++ {
			av := a[i*lda+p]
			if transA {
				av = a[p*lda+i]
			}
			av *= alpha
			if av == 0 {
				continue
			}
			if transB {
				for j := 0; j < n; j++ {
					crow[j] += av * b[j*ldb+p]
				}
			} else {
				for j, bv := range b[p*ldb : p*ldb+n] {
					crow[j] += av * bv
				}
			}
		}
	}
}

// BenchmarkGemmF32 compares the blocked kernel ("fast"), the same with B
// packed ahead as for constant weights ("packed"), and the plain loop
// ("loop"). Sizes are m×n×k; "tB" marks a transposed B as in Gemm with
// transB=1 (PyTorch Linear). GFLOP/s is reported for comparison.
func BenchmarkGemmF32(b *testing.B) {
	type size struct {
		m, n, k int
		tb      bool
	}
	sizes := []size{
		{64, 64, 64, false}, {256, 256, 256, false}, {1, 128, 4, false},
		{1, 512, 512, true}, {8, 512, 512, true}, {32, 784, 288, false},
	}
	r := rand.New(rand.NewSource(1))
	for _, s := range sizes {
		a, bm, c := gemmRand[float32](r, s.m*s.k), gemmRand[float32](r, s.k*s.n), make([]float32, s.m*s.n)
		ldb := s.n
		if s.tb {
			ldb = s.k
		}
		pk := gemmPack(s.tb, s.k, s.n, bm, ldb)
		name := fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k)
		if s.tb {
			name += "tB"
		}
		run := func(kind string, f func()) {
			b.Run(name+"/"+kind, func(b *testing.B) {
				for b.Loop() {
					f()
				}
				b.ReportMetric(float64(2*s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		run("fast", func() { gemmF32(false, s.tb, s.m, s.n, s.k, 1, a, s.k, bm, ldb, 0, c, s.n) })
		run("packed", func() { gemmWithPacked(false, s.m, 1, a, s.k, pk, 0, c, s.n) })
		run("loop", func() { gemmLoopF32(false, s.tb, s.m, s.n, s.k, 1, a, s.k, bm, ldb, 0, c, s.n) })
	}
}

// BenchmarkGemmF64 checks the float64 instantiation keeps pace.
func BenchmarkGemmF64(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	const n = 256
	a, bm, c := gemmRand[float64](r, n*n), gemmRand[float64](r, n*n), make([]float64, n*n)
	for b.Loop() {
		gemmF64(false, false, n, n, n, 1, a, n, bm, n, 0, c, n)
	}
}
