package builtin

import (
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// gemmNaive is the textbook triple loop, the reference for the blocked
// kernels.
func gemmNaive[T gemmFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += float64(av) * float64(bv)
			}
			r := T(float64(alpha) * s)
			if beta != 0 {
				r += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = r
		}
	}
}

func gemmRand[T gemmFloat](r *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(r.Float64()*2 - 1)
	}
	return s
}

type gemmCase struct {
	m, n, k     int
	ta, tb      bool
	alpha, beta float64
	pad         int // extra elements per row on every stride
}

func gemmCases() []gemmCase {
	sizes := [][3]int{
		{1, 1, 1}, {1, 128, 4}, {1, 7, 300}, {2, 5, 3}, {3, 13, 17},
		{4, 6, 1}, {5, 7, 3}, {7, 1, 9}, {17, 13, 300}, {64, 64, 64},
		{130, 11, 7}, {6, 1030, 5}, {9, 20, 513}, {33, 257, 19}, {5, 3, 2},
		{9, 2, 40}, {10, 1, 40},
	}
	var cs []gemmCase
	for si, s := range sizes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				c := gemmCase{m: s[0], n: s[1], k: s[2], ta: ta, tb: tb, alpha: 1, beta: 0}
				switch si % 4 {
				case 1:
					c.alpha, c.beta = 1.5, 0.5
				case 2:
					c.beta = 1
				case 3:
					c.alpha, c.beta, c.pad = -0.25, 2, 3
				}
				cs = append(cs, c)
			}
		}
	}
	return cs
}

// gemmCheck runs fn on random data for every case and compares with the
// naive product; it also checks A and B are left alone and that padding
// columns of C are not touched.
func gemmCheck[T gemmFloat](t *testing.T, tol float64, fn func(c gemmCase, a []T, lda int, b []T, ldb int, cm []T, ldc int)) {
	t.Helper()
	r := rand.New(rand.NewSource(1))
	for _, c := range gemmCases() {
		ar, ac := c.m, c.k
		if c.ta {
			ar, ac = c.k, c.m
		}
		br, bc := c.k, c.n
		if c.tb {
			br, bc = c.n, c.k
		}
		lda, ldb, ldc := ac+c.pad, bc+c.pad, c.n+c.pad
		a, b := gemmRand[T](r, ar*lda), gemmRand[T](r, br*ldb)
		c0 := gemmRand[T](r, c.m*ldc)
		if c.beta == 0 {
			for i := range c0 {
				c0[i] = T(math.NaN()) // beta 0 must ignore C entirely
			}
		}
		a0, b0 := slices.Clone(a), slices.Clone(b)
		want := slices.Clone(c0)
		gemmNaive(c.ta, c.tb, c.m, c.n, c.k, T(c.alpha), a, lda, b, ldb, T(c.beta), want, ldc)
		got := slices.Clone(c0)
		fn(c, a, lda, b, ldb, got, ldc)
		if !slices.Equal(a, a0) || !slices.Equal(b, b0) {
			t.Fatalf("%+v: inputs modified", c)
		}
		for i := range got {
			if i%ldc >= c.n {
				if !slices.Equal(got[i:i+1], c0[i:i+1]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(c0[i]))) {
					t.Fatalf("%+v: padding C[%d] changed", c, i)
				}
				continue
			}
			if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*math.Max(1, math.Abs(float64(want[i])))) {
				t.Fatalf("%+v: C[%d,%d] = %v, want %v", c, i/ldc, i%ldc, got[i], want[i])
			}
		}
	}
}

func TestGemmF32(t *testing.T) {
	gemmCheck(t, 1e-4, func(c gemmCase, a []float32, lda int, b []float32, ldb int, cm []float32, ldc int) {
		gemmF32(c.ta, c.tb, c.m, c.n, c.k, float32(c.alpha), a, lda, b, ldb, float32(c.beta), cm, ldc)
	})
}

func TestGemmF64(t *testing.T) {
	gemmCheck(t, 1e-12, func(c gemmCase, a []float64, lda int, b []float64, ldb int, cm []float64, ldc int) {
		gemmF64(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, cm, ldc)
	})
}

func TestGemmPacked(t *testing.T) {
	gemmCheck(t, 1e-4, func(c gemmCase, a []float32, lda int, b []float32, ldb int, cm []float32, ldc int) {
		pk := gemmPack(c.tb, c.k, c.n, b, ldb)
		gemmWithPacked(c.ta, c.m, float32(c.alpha), a, lda, pk, float32(c.beta), cm, ldc)
	})
	gemmCheck(t, 1e-12, func(c gemmCase, a []float64, lda int, b []float64, ldb int, cm []float64, ldc int) {
		pk := gemmPack(c.tb, c.k, c.n, b, ldb)
		gemmWithPacked(c.ta, c.m, c.alpha, a, lda, pk, c.beta, cm, ldc)
	})
}

func TestGemmDegenerate(t *testing.T) {
	// k == 0: C = beta*C; alpha == 0: A and B are not read.
	c := []float32{1, 2, 3, 4}
	gemmF32(false, false, 2, 2, 0, 1, nil, 0, nil, 2, 2, c, 2)
	if !slices.Equal(c, []float32{2, 4, 6, 8}) {
		t.Fatalf("k=0: %v", c)
	}
	gemmF32(false, false, 2, 2, 3, 0, nil, 3, nil, 2, 0.5, c, 2)
	if !slices.Equal(c, []float32{1, 2, 3, 4}) {
		t.Fatalf("alpha=0: %v", c)
	}
	gemmF32(false, false, 0, 5, 3, 1, nil, 3, nil, 5, 0, nil, 5) // m == 0: nothing
}

// gemmPackRaw must give exactly gemmPack's layout, band boundaries and
// depth blocks included.
func TestGemmPackRaw(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for _, s := range []struct{ k, n int }{{1, 1}, {3, 7}, {16, 6}, {300, 13}, {600, 40}, {17, 3000}, {257, 1100}} {
		for _, tb := range []bool{false, true} {
			rows, cols := s.k, s.n
			if tb {
				rows, cols = cols, rows
			}
			b32 := make([]float32, rows*cols)
			b64 := make([]float64, rows*cols)
			for i := range b32 {
				b32[i] = r.Float32()
				b64[i] = r.Float64()
			}
			raw32 := onnx.FromTensor("b", tensor.FromFloat32([]int{rows, cols}, b32)).RawData
			raw64 := onnx.FromTensor("b", tensor.FromFloat64([]int{rows, cols}, b64)).RawData
			if got, want := gemmPackRaw[float32](tb, s.k, s.n, raw32), gemmPack(tb, s.k, s.n, b32, cols); !slices.Equal(got.data, want.data) || got.k != want.k || got.n != want.n {
				t.Errorf("float32 k=%d n=%d transB=%v: raw packing differs", s.k, s.n, tb)
			}
			if got, want := gemmPackRaw[float64](tb, s.k, s.n, raw64), gemmPack(tb, s.k, s.n, b64, cols); !slices.Equal(got.data, want.data) {
				t.Errorf("float64 k=%d n=%d transB=%v: raw packing differs", s.k, s.n, tb)
			}
		}
	}
}
