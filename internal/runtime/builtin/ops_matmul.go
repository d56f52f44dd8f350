package builtin

import (
	"fmt"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// MatMul (numpy semantics) and Gemm, both on the shared gemm kernel. A
// constant B (the weights, in practice) is packed into the kernel's panel
// layout once at load time; that removes the per-call packing and lets
// single-row products (batch-1 inference) use the fast kernel too. The
// packed copy replaces B: the factory consumes the constant (consumeConst),
// so the model keeps one copy of the weights, not two.

func init() {
	register("MatMul", mathMatMulFactory)
	register("Gemm", mathGemmFactory)
}

// mathPacked holds a constant B packed for whichever float type it has, and
// B's header (datatype and shape, no data) for the kernels' checks.
type mathPacked struct {
	f32 *gemmPacked[float32]
	f64 *gemmPacked[float64]
	hdr *tensor.Tensor
}

// mathPackConst packs a constant 2-D B (k×n after transB) and consumes it,
// unless it has a single column (the dot-product path serves that better),
// is shallow (fewer than gemmShallowK rows after transB: row loops on the
// original beat the packed kernel, and packing it per call is cheap), or A
// is constant too (the node is folded once at load time anyway). A B still
// in the file's raw bytes is packed from them directly, never converted.
func mathPackConst(n *nodeInfo, transB bool) mathPacked {
	if !n.isConst(1) || n.isConst(0) {
		return mathPacked{}
	}
	raw := n.rawConst(1)
	var dt tensor.DType
	var shape []int
	var b *tensor.Tensor
	if raw != nil {
		dt, _ = n.constDType(1)
		for _, d := range raw.Dims {
			shape = append(shape, int(d))
		}
	} else {
		b = n.constInput(1)
		if b.Validate() != nil {
			return mathPacked{}
		}
		dt, shape = b.DType, slices.Clone(b.Shape)
	}
	if len(shape) != 2 {
		return mathPacked{}
	}
	k, cols, ldb := shape[0], shape[1], shape[1]
	if transB {
		k, cols = cols, k
	}
	if cols < 2 || k < gemmShallowK {
		return mathPacked{}
	}
	pk := mathPacked{hdr: &tensor.Tensor{DType: dt, Shape: shape}}
	switch {
	case dt == tensor.Float32 && raw != nil:
		pk.f32 = gemmPackRaw[float32](transB, k, cols, raw.RawData)
	case dt == tensor.Float32:
		pk.f32 = gemmPack(transB, k, cols, b.F32, ldb)
	case dt == tensor.Float64 && raw != nil:
		pk.f64 = gemmPackRaw[float64](transB, k, cols, raw.RawData)
	case dt == tensor.Float64:
		pk.f64 = gemmPack(transB, k, cols, b.F64, ldb)
	default:
		return mathPacked{}
	}
	n.consumeConst(1)
	return pk
}

// operandB returns B for a kernel: the header of the packed constant when
// there is one (in[1] is then nil), else the input.
func (pk mathPacked) operandB(in []*tensor.Tensor) *tensor.Tensor {
	if pk.hdr != nil {
		return pk.hdr
	}
	return in[1]
}

func mathMatMulFactory(n *nodeInfo) (kernel, error) {
	for i := 0; i < 2; i++ {
		if dt, ok := n.constDType(i); ok && !mathIsNum(dt) {
			return nil, n.errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", dt)
		}
	}
	pk := mathPackConst(n, false)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		out, err := mathMatMul(in[0], pk.operandB(in), pk)
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func mathMatMul(a, b *tensor.Tensor, pk mathPacked) (*tensor.Tensor, error) {
	if a.DType != b.DType {
		return nil, fmt.Errorf("input datatypes %v and %v differ", a.DType, b.DType)
	}
	if len(a.Shape) == 0 || len(b.Shape) == 0 {
		return nil, fmt.Errorf("inputs must have rank 1 or more, got shapes %v and %v", a.Shape, b.Shape)
	}
	// A vector is promoted to a matrix (a row for A, a column for B) and
	// the added dimension removed from the result.
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k := as[len(as)-2], as[len(as)-1]
	n := bs[len(bs)-1]
	if bs[len(bs)-2] != k {
		return nil, fmt.Errorf("input shapes %v and %v do not match for matrix multiplication", a.Shape, b.Shape)
	}
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	batch, err := mathBroadcastShape(ab, bb)
	if err != nil {
		return nil, fmt.Errorf("batch dimensions of %v and %v cannot be broadcast", a.Shape, b.Shape)
	}
	shape := append([]int(nil), batch...)
	if len(a.Shape) > 1 {
		shape = append(shape, m)
	}
	if len(b.Shape) > 1 {
		shape = append(shape, n)
	}
	out := &tensor.Tensor{DType: a.DType, Shape: shape}
	g := mathMM{m: m, n: n, k: k, batch: batch, ab: ab, bb: bb}
	if a.Len() != tensor.NumElements(a.Shape) || (pk.hdr == nil && b.Len() != tensor.NumElements(b.Shape)) {
		return nil, fmt.Errorf("input data does not match its shape")
	}
	switch a.DType {
	case tensor.Float32:
		out.F32 = mathMatMulRun(g, a.F32, b.F32, gemm[float32], mathPackedFn(pk.f32))
	case tensor.Float64:
		out.F64 = mathMatMulRun(g, a.F64, b.F64, gemm[float64], mathPackedFn(pk.f64))
	case tensor.Int32:
		out.I32 = mathMatMulRun(g, a.I32, b.I32, mathGemmInt[int32], nil)
	case tensor.Int64:
		out.I64 = mathMatMulRun(g, a.I64, b.I64, mathGemmInt[int64], nil)
	default:
		return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", a.DType)
	}
	return out, nil
}

// mathMM is a MatMul's geometry: matrices m×k by k×n, the broadcast batch
// shape and each input's own batch shape.
type mathMM struct {
	m, n, k       int
	batch, ab, bb []int
}

// mathGemmFn is the gemm signature both the float kernel and the integer
// loop offer (the integer one ignores transposes and scaling: MatMul uses
// neither).
type mathGemmFn[T mathNum] func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)

// mathPackedFn returns the product with a pre-packed B, or nil without one.
func mathPackedFn[T gemmFloat](pk *gemmPacked[T]) func(rows int, a, c []T) {
	if pk == nil {
		return nil
	}
	return func(rows int, a, c []T) { gemmWithPacked(false, rows, 1, a, pk.k, pk, 0, c, pk.n) }
}

// mathMatMulRun runs the batched product with mm, or with packed (B
// packed at load time) when given.
func mathMatMulRun[T mathNum](g mathMM, a, b []T, mm mathGemmFn[T], packed func(rows int, a, c []T)) []T {
	m, n, k := g.m, g.n, g.k
	nb := tensor.NumElements(g.batch)
	c := make([]T, nb*m*n)
	if tensor.NumElements(g.bb) == 1 {
		// One B for every batch: the batches of A stack into one tall
		// matrix (row-major layouts agree), a single product.
		if packed != nil {
			packed(nb*m, a, c)
		} else {
			mm(false, false, nb*m, n, k, 1, a, k, b, n, 0, c, n)
		}
		return c
	}
	bc := mathNewBcast(g.batch, g.ab, g.bb)
	sa, sb := bc.step[0], bc.step[1]
	bc.runs(func(o int, offs []int) {
		for t := 0; t < bc.inner; t++ {
			ai, bi := (offs[0]+t*sa)*m*k, (offs[1]+t*sb)*k*n
			mm(false, false, m, n, k, 1, a[ai:ai+m*k], k, b[bi:bi+k*n], n, 0, c[(o+t)*m*n:(o+t+1)*m*n], n)
		}
	})
	return c
}

// mathGemmInt is C = A·B for integers, wrapping on overflow like C.
func mathGemmInt[T int32 | int64](_, _ bool, m, n, k int, _ T, a []T, lda int, b []T, ldb int, _ T, c []T, ldc int) {
	for i := 0; i < m; i++ {
		crow := c[i*ldc : i*ldc+n]
		clear(crow)
		for p := 0; p < k; p++ {
			av := a[i*lda+p]
			for j, bv := range b[p*ldb : p*ldb+n] {
				crow[j] += av * bv
			}
		}
	}
}

func mathGemmFactory(n *nodeInfo) (kernel, error) {
	transA := n.attrInt("transA", 0) != 0
	transB := n.attrInt("transB", 0) != 0
	alpha, beta := n.attrFloat("alpha", 1), n.attrFloat("beta", 1)
	for i := 0; i < 3; i++ {
		if dt, ok := n.constDType(i); ok && dt != tensor.Float32 && dt != tensor.Float64 {
			return nil, n.errorf("datatype %v is not supported (supported: FP32, FP64)", dt)
		}
	}
	pk := mathPackConst(n, transB)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		a, b := in[0], pk.operandB(in)
		var c *tensor.Tensor
		if len(in) > 2 {
			c = in[2]
		}
		g, err := mathGemmGeometry(a, b, c, transA, transB, pk.hdr != nil)
		if err != nil {
			return nil, err
		}
		out := &tensor.Tensor{DType: a.DType, Shape: []int{g.m, g.n}}
		switch a.DType {
		case tensor.Float32:
			out.F32 = mathGemmRun(g, a.F32, b.F32, c, func(t *tensor.Tensor) []float32 { return t.F32 }, alpha, beta, pk.f32)
		case tensor.Float64:
			out.F64 = mathGemmRun(g, a.F64, b.F64, c, func(t *tensor.Tensor) []float64 { return t.F64 }, float64(alpha), float64(beta), pk.f64)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64)", a.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// mathGemmGeom is a Gemm's checked geometry: Y (m×n) = op(A) (m×k) op(B)
// (k×n), and C's strides against Y (0 along a broadcast dimension).
type mathGemmGeom struct {
	m, n, k        int
	transA, transB bool
	lda, ldb       int
	cRow, cCol     int
}

// mathGemmGeometry checks the inputs; b is a data-less header when
// bPacked (its data was checked when packed).
func mathGemmGeometry(a, b, c *tensor.Tensor, transA, transB, bPacked bool) (mathGemmGeom, error) {
	var g mathGemmGeom
	if a.DType != b.DType || (c != nil && c.DType != a.DType) {
		return g, fmt.Errorf("input datatypes differ")
	}
	if len(a.Shape) != 2 || len(b.Shape) != 2 {
		return g, fmt.Errorf("inputs A and B must be matrices, got shapes %v and %v", a.Shape, b.Shape)
	}
	if a.Len() != tensor.NumElements(a.Shape) || (!bPacked && b.Len() != tensor.NumElements(b.Shape)) ||
		(c != nil && c.Len() != tensor.NumElements(c.Shape)) {
		return g, fmt.Errorf("input data does not match its shape")
	}
	g.transA, g.transB = transA, transB
	g.m, g.k, g.lda = a.Shape[0], a.Shape[1], a.Shape[1]
	if transA {
		g.m, g.k = g.k, g.m
	}
	kb, nn := b.Shape[0], b.Shape[1]
	g.ldb = nn
	if transB {
		kb, nn = nn, kb
	}
	if kb != g.k {
		return g, fmt.Errorf("inputs A %v and B %v do not match (transA=%v, transB=%v)", a.Shape, b.Shape, transA, transB)
	}
	g.n = nn
	if c == nil {
		return g, nil
	}
	// C broadcasts to (m, n) one way only, aligned on the right.
	cr, cc := 1, 1
	switch len(c.Shape) {
	case 0:
	case 1:
		cc = c.Shape[0]
	case 2:
		cr, cc = c.Shape[0], c.Shape[1]
	default:
		return g, fmt.Errorf("input C of shape %v cannot be broadcast to [%d %d]", c.Shape, g.m, g.n)
	}
	if (cr != 1 && cr != g.m) || (cc != 1 && cc != g.n) {
		return g, fmt.Errorf("input C of shape %v cannot be broadcast to [%d %d]", c.Shape, g.m, g.n)
	}
	if cc != 1 {
		g.cCol = 1
	}
	if cr != 1 {
		g.cRow = cc
	}
	return g, nil
}

func mathGemmRun[T gemmFloat](g mathGemmGeom, a, b []T, c *tensor.Tensor, data func(*tensor.Tensor) []T, alpha, beta T, pk *gemmPacked[T]) []T {
	y := make([]T, g.m*g.n)
	scale := T(0)
	if c != nil && beta != 0 && g.m > 0 && g.n > 0 {
		// Y starts as C broadcast; the kernel scales it by beta.
		cd := data(c)
		for i := 0; i < g.m; i++ {
			row, src := y[i*g.n:(i+1)*g.n], cd[i*g.cRow:]
			if g.cCol == 1 {
				copy(row, src[:g.n])
				continue
			}
			for j := range row {
				row[j] = src[0]
			}
		}
		scale = beta
	}
	if pk != nil {
		gemmWithPacked(g.transA, g.m, alpha, a, g.lda, pk, scale, y, g.n)
	} else {
		gemm(g.transA, g.transB, g.m, g.n, g.k, alpha, a, g.lda, b, g.ldb, scale, y, g.n)
	}
	return y
}
