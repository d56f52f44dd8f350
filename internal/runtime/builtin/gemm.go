package builtin

import (
	"sync"

	"github.com/bulwark-ml/bulwark/internal/onnx"
)

// The matrix multiply behind MatMul, Gemm and Conv (through im2col), in
// plain Go. The layout follows the usual packed-panel scheme: op(B) is
// copied, one depth block at a time, into panels of gemmNR columns stored
// depth-major, so the micro-kernel reads B strictly sequentially whatever
// transB is; op(A) rows are read directly when A is neither transposed nor
// scaled, otherwise packed (with alpha folded in) the same way.
//
// The micro-kernel computes one row of C against one panel (a 1×gemmNR
// tile) with the accumulators in locals. Wider tiles look better on paper
// but the Go compiler schedules every product of a loop body before the
// accumulating adds, so anything above ~15 live floats spills to the stack
// and runs slower than this shape (measured on amd64: 1×6 with the depth
// loop unrolled twice beats 2×3, 2×4, 4×2, 4×4 and 1×8).
const (
	gemmNR = 6    // columns per B panel: the micro-kernel's accumulators
	gemmKC = 256  // depth per block: a KC×NR panel of B stays in L1
	gemmMC = 128  // rows of A per block: MC×KC of A stays in L2
	gemmNC = 1024 // columns of B packed at once, bounding the buffer
	// Below this many rows packing B costs more than it saves; such
	// products (batch-1 inference) use the direct row loops instead.
	gemmSmallM = 4
	// With fewer depth steps than this a micro-kernel call does too little
	// work to pay for itself.
	gemmShallowK = 16
)

// gemmF32 computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X or its transpose. A is m×k after op, B is k×n after op,
// C is m×n. lda, ldb, ldc are the row strides of the stored matrices.
// MatMul, Gemm and Conv (through im2col) all run on it.
func gemmF32(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmF64 is gemmF32 for float64.
func gemmF64(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

type gemmFloat interface{ float32 | float64 }

func gemm[T gemmFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	gemmScaleC(m, n, beta, c, ldc)
	if k <= 0 || alpha == 0 {
		return
	}
	if n == 1 && ldb == 1 {
		transB = true // a single contiguous column reads the same either way
	}
	if m < gemmSmallM || (n == 1 && transB) {
		// A matrix-vector product is best done as dot products.
		gemmSmall(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc)
		return
	}
	kk, nn := min(k, gemmKC), min(n, gemmNC)
	bufB := gemmGetBuf[T](kk * gemmRoundNR(nn))
	defer gemmPutBuf(bufB)
	for j0 := 0; j0 < n; j0 += gemmNC {
		nb := min(gemmNC, n-j0)
		for p0 := 0; p0 < k; p0 += gemmKC {
			kb := min(gemmKC, k-p0)
			gemmPackB(transB, b, ldb, p0, kb, j0, nb, *bufB)
			gemmBlocksA(transA, m, nb, kb, alpha, a, lda, p0, *bufB, c[j0:], ldc)
		}
	}
}

// gemmPacked is op(B) packed once, for products with constant weights
// (Gemm and MatMul with an initializer as B): the per-call packing then
// disappears, and even single-row products use the fast kernel.
// It does not keep the original: the packed copy is the only one a model
// holds.
type gemmPacked[T gemmFloat] struct {
	k, n int
	data []T // per depth block of gemmKC: roundNR(n)/NR panels of kb×NR
}

// gemmPack packs op(B) (k×n). Products of depth under gemmShallowK run
// faster on the original (gemmSmall), so callers should not pack those.
func gemmPack[T gemmFloat](transB bool, k, n int, b []T, ldb int) *gemmPacked[T] {
	np := gemmRoundNR(n)
	pk := &gemmPacked[T]{k: k, n: n, data: make([]T, k*np)}
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		gemmPackB(transB, b, ldb, p0, kb, 0, n, pk.data[p0*np:])
	}
	return pk
}

// gemmRawBand bounds the scratch buffer of gemmPackRaw, in elements.
const gemmRawBand = 1 << 16

// gemmPackRaw is gemmPack for a B stored as little-endian raw bytes (an
// ONNX initializer's raw_data; row-major k×n, or n×k when transB): it
// converts a band of B at a time into a small buffer and packs that, so B
// is never held converted as a whole.
func gemmPackRaw[T gemmFloat](transB bool, k, n int, raw []byte) *gemmPacked[T] {
	np := gemmRoundNR(n)
	pk := &gemmPacked[T]{k: k, n: n, data: make([]T, k*np)}
	size := 4
	if _, ok := any(T(0)).(float64); ok {
		size = 8
	}
	if transB {
		// Stored n×k: bands of whole panels of stored rows.
		rows := gemmNR * max(1, gemmRawBand/(gemmNR*k))
		pb := gemmGetBuf[T](min(rows, n) * k)
		defer gemmPutBuf(pb)
		buf := *pb
		for j0 := 0; j0 < n; j0 += rows {
			nb := min(rows, n-j0)
			band := buf[:nb*k]
			onnx.DecodeFloats(band, raw[j0*k*size:])
			for p0 := 0; p0 < k; p0 += gemmKC {
				kb := min(gemmKC, k-p0)
				gemmPackB(true, band, k, p0, kb, 0, nb, pk.data[p0*np+j0*kb:])
			}
		}
		return pk
	}
	// Stored k×n: one depth block of stored rows at a time.
	pb := gemmGetBuf[T](min(k, gemmKC) * n)
	defer gemmPutBuf(pb)
	buf := *pb
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		band := buf[:kb*n]
		onnx.DecodeFloats(band, raw[p0*n*size:])
		gemmPackB(false, band, n, 0, kb, 0, n, pk.data[p0*np:])
	}
	return pk
}

// gemmWithPacked computes C = alpha*op(A)*B + beta*C with B packed by
// gemmPack; op(A) is m×pk.k.
func gemmWithPacked[T gemmFloat](transA bool, m int, alpha T, a []T, lda int, pk *gemmPacked[T], beta T, c []T, ldc int) {
	n, k := pk.n, pk.k
	if m <= 0 || n <= 0 {
		return
	}
	gemmScaleC(m, n, beta, c, ldc)
	if k <= 0 || alpha == 0 {
		return
	}
	np := gemmRoundNR(n)
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		gemmBlocksA(transA, m, n, kb, alpha, a, lda, p0, pk.data[p0*np:p0*np+kb*np], c, ldc)
	}
}

func gemmRoundNR(n int) int { return (n + gemmNR - 1) / gemmNR * gemmNR }

// gemmScaleC applies beta to C up front, so every block only accumulates.
// beta == 0 overwrites, so NaNs in an uninitialised C do not leak through.
func gemmScaleC[T gemmFloat](m, n int, beta T, c []T, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmBlocksA multiplies rows of op(A) (columns p0..p0+kb) by one packed
// block of B (kb × n) into C, MC rows at a time.
func gemmBlocksA[T gemmFloat](transA bool, m, n, kb int, alpha T, a []T, lda, p0 int, pb []T, c []T, ldc int) {
	direct := !transA && alpha == 1
	var bufA *[]T
	if !direct {
		bufA = gemmGetBuf[T](min(m, gemmMC) * kb)
		defer gemmPutBuf(bufA)
	}
	for i0 := 0; i0 < m; i0 += gemmMC {
		mb := min(gemmMC, m-i0)
		var rows []T
		ld := kb
		if direct {
			rows, ld = a[i0*lda+p0:], lda
		} else {
			rows = *bufA
			gemmPackA(transA, alpha, a, lda, i0, mb, p0, kb, rows)
		}
		// Panel outer, rows inner: the panel stays in L1 while A rows
		// stream from L2.
		for jp := 0; jp < n; jp += gemmNR {
			w := min(gemmNR, n-jp)
			panel := pb[jp*kb : (jp+gemmNR)*kb]
			for i := 0; i < mb; i++ {
				o := (i0+i)*ldc + jp
				gemmMicro(rows[i*ld:i*ld+kb], panel, c[o:o+w])
			}
		}
	}
}

// gemmPackB copies op(B)[p0:p0+kb, j0:j0+nb] into dst as panels of gemmNR
// columns, each kb×gemmNR row-major, zero-padding the last panel. Full
// panels are written sequentially with unrolled element copies (copy's
// call overhead dominates for six elements).
func gemmPackB[T gemmFloat](transB bool, b []T, ldb, p0, kb, j0, nb int, dst []T) {
	for jp := 0; jp < nb; jp += gemmNR {
		w := min(gemmNR, nb-jp)
		panel := dst[jp*kb : (jp+gemmNR)*kb]
		switch {
		case w < gemmNR:
			clear(panel)
			for jj := 0; jj < w; jj++ {
				for p := 0; p < kb; p++ {
					if transB {
						panel[p*gemmNR+jj] = b[(j0+jp+jj)*ldb+p0+p]
					} else {
						panel[p*gemmNR+jj] = b[(p0+p)*ldb+j0+jp+jj]
					}
				}
			}
		case transB:
			// Stored n×k: six stored rows are read side by side.
			o := (j0+jp)*ldb + p0
			r0 := b[o : o+kb]
			r1 := b[o+ldb : o+ldb+kb]
			r2 := b[o+2*ldb : o+2*ldb+kb]
			r3 := b[o+3*ldb : o+3*ldb+kb]
			r4 := b[o+4*ldb : o+4*ldb+kb]
			r5 := b[o+5*ldb : o+5*ldb+kb]
			for p := range r0 {
				d := panel[p*gemmNR : p*gemmNR+gemmNR : p*gemmNR+gemmNR]
				d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
		default:
			for p := 0; p < kb; p++ {
				o := (p0+p)*ldb + j0 + jp
				s := b[o : o+gemmNR : o+gemmNR]
				d := panel[p*gemmNR : p*gemmNR+gemmNR : p*gemmNR+gemmNR]
				d[0], d[1], d[2], d[3], d[4], d[5] = s[0], s[1], s[2], s[3], s[4], s[5]
			}
		}
	}
}

// gemmPackA copies alpha*op(A)[i0:i0+mb, p0:p0+kb] into dst, row-major with
// row stride kb.
func gemmPackA[T gemmFloat](transA bool, alpha T, a []T, lda, i0, mb, p0, kb int, dst []T) {
	if transA {
		// Stored k×m: read each stored row once, scatter into columns.
		for p := 0; p < kb; p++ {
			src := a[(p0+p)*lda+i0 : (p0+p)*lda+i0+mb]
			for i, v := range src {
				dst[i*kb+p] = alpha * v
			}
		}
		return
	}
	for i := 0; i < mb; i++ {
		src := a[(i0+i)*lda+p0 : (i0+i)*lda+p0+kb]
		d := dst[i*kb : i*kb+kb]
		for p, v := range src {
			d[p] = alpha * v
		}
	}
}

// gemmMicro adds a·panel to c, where a is one row of op(A) over a depth
// block (kb values) and panel the matching kb×gemmNR packed B; c receives
// the first len(c) ≤ gemmNR columns. The loop is unrolled twice over depth.
func gemmMicro[T gemmFloat](a, panel, c []T) {
	var c0, c1, c2, c3, c4, c5 T
	kb := len(a)
	panel = panel[:kb*gemmNR]
	p := 0
	for i := 0; p+1 < kb && i+11 < len(panel); i += 12 {
		b := panel[i : i+12 : i+12]
		a0, a1 := a[p], a[p+1]
		c0 += a0 * b[0]
		c1 += a0 * b[1]
		c2 += a0 * b[2]
		c3 += a0 * b[3]
		c4 += a0 * b[4]
		c5 += a0 * b[5]
		c0 += a1 * b[6]
		c1 += a1 * b[7]
		c2 += a1 * b[8]
		c3 += a1 * b[9]
		c4 += a1 * b[10]
		c5 += a1 * b[11]
		p += 2
	}
	if p < kb {
		a0 := a[p]
		b := panel[p*gemmNR : p*gemmNR+gemmNR]
		c0 += a0 * b[0]
		c1 += a0 * b[1]
		c2 += a0 * b[2]
		c3 += a0 * b[3]
		c4 += a0 * b[4]
		c5 += a0 * b[5]
	}
	if len(c) == gemmNR {
		c = c[:gemmNR]
		c[0] += c0
		c[1] += c1
		c[2] += c2
		c[3] += c3
		c[4] += c4
		c[5] += c5
		return
	}
	t := [gemmNR]T{c0, c1, c2, c3, c4, c5}
	for j := range c {
		c[j] += t[j]
	}
}

// gemmSmall handles products with few rows without packing B: each row of
// op(A) (alpha folded in) meets B either as dot products with B's stored
// rows (transB) or as four-row axpys over B's rows.
func gemmSmall[T gemmFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	buf := gemmGetBuf[T](k)
	defer gemmPutBuf(buf)
	arow := *buf
	for i := 0; i < m; i++ {
		for p := range arow {
			if transA {
				arow[p] = alpha * a[p*lda+i]
			} else {
				arow[p] = alpha * a[i*lda+p]
			}
		}
		crow := c[i*ldc : i*ldc+n]
		if transB {
			for j := range crow {
				crow[j] += gemmDot(arow, b[j*ldb:j*ldb+k])
			}
			continue
		}
		p := 0
		for ; p+3 < k; p += 4 {
			a0, a1, a2, a3 := arow[p], arow[p+1], arow[p+2], arow[p+3]
			b0 := b[p*ldb : p*ldb+n]
			b1 := b[(p+1)*ldb : (p+1)*ldb+n]
			b2 := b[(p+2)*ldb : (p+2)*ldb+n]
			b3 := b[(p+3)*ldb : (p+3)*ldb+n]
			for j := range crow {
				crow[j] += a0*b0[j] + a1*b1[j] + a2*b2[j] + a3*b3[j]
			}
		}
		for ; p < k; p++ {
			av := arow[p]
			for j, bv := range b[p*ldb : p*ldb+n] {
				crow[j] += av * bv
			}
		}
	}
}

// gemmDot is a dot product with four independent sums, so consecutive adds
// do not wait on each other.
func gemmDot[T gemmFloat](x, y []T) T {
	y = y[:len(x)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+3 < len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Packing buffers are pooled: allocating (and zeroing) them per call costs
// as much as a small product.
var gemmPoolF32, gemmPoolF64 sync.Pool

func gemmGetBuf[T gemmFloat](n int) *[]T {
	var p *[]T
	var v any
	switch any(T(0)).(type) {
	case float32:
		v = gemmPoolF32.Get()
	default:
		v = gemmPoolF64.Get()
	}
	if v != nil {
		p = v.(*[]T)
	} else {
		p = new([]T)
	}
	if cap(*p) < n {
		*p = make([]T, n)
	}
	*p = (*p)[:n]
	return p
}

func gemmPutBuf[T gemmFloat](p *[]T) {
	switch any(T(0)).(type) {
	case float32:
		gemmPoolF32.Put(p)
	default:
		gemmPoolF64.Put(p)
	}
}
