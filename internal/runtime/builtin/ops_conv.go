package builtin

import (
	"fmt"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func init() { register("Conv", newConv) }

// cnnMaxRank is the largest spatial rank the CNN kernels handle. Geometry is
// stored as 3-D with leading unit axes, so one loop nest serves 1-D, 2-D and
// 3-D convolution and pooling.
const cnnMaxRank = 3

// convBlockCols is the target number of output positions per im2col block:
// about 2x faster than one whole-image block on a 32x32 3x3 layer.
const convBlockCols = 256

// cnnAttrs are the window attributes shared by Conv and the pooling ops.
type cnnAttrs struct {
	rank      int // spatial rank implied by the attributes; -1 when none given
	autoPad   string
	kernel    []int // nil when kernel_shape is absent
	strides   []int
	dilations []int
	pads      []int // all begins, then all ends
	ceil      bool
}

// cnnParseAttrs validates the window attributes at load time.
func cnnParseAttrs(n *nodeInfo) (cnnAttrs, error) {
	a := cnnAttrs{rank: -1, autoPad: n.attrString("auto_pad", "NOTSET")}
	switch a.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return a, n.errorf("auto_pad %q is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID)", a.autoPad)
	}
	list := func(name string, min int64, per int) ([]int, error) {
		v, ok := n.attrInts(name)
		if !ok {
			return nil, nil
		}
		if len(v)%per != 0 {
			return nil, n.errorf("%s has %d values, want %d per spatial axis", name, len(v), per)
		}
		r := len(v) / per
		if a.rank >= 0 && r != a.rank {
			return nil, n.errorf("%s has %d values for %d spatial axes", name, len(v), a.rank)
		}
		a.rank = r
		out := make([]int, len(v))
		for i, x := range v {
			if x < min {
				return nil, n.errorf("%s value %d is out of range (minimum %d)", name, x, min)
			}
			out[i] = int(x)
		}
		return out, nil
	}
	var err error
	if a.kernel, err = list("kernel_shape", 1, 1); err != nil {
		return a, err
	}
	if a.strides, err = list("strides", 1, 1); err != nil {
		return a, err
	}
	if a.dilations, err = list("dilations", 1, 1); err != nil {
		return a, err
	}
	if a.pads, err = list("pads", 0, 2); err != nil {
		return a, err
	}
	if a.rank > cnnMaxRank || a.rank == 0 {
		return a, n.errorf("%d spatial dimensions are not supported (1 to %d)", a.rank, cnnMaxRank)
	}
	return a, nil
}

// cnnGeom is one window geometry resolved against an input's spatial shape.
// Axis cnnMaxRank-rank+j holds spatial axis j; leading axes are unit sized.
type cnnGeom struct {
	rank                     int
	in, out, k, s, d, pb, pe [cnnMaxRank]int
}

func (g *cnnGeom) inSize() int  { return g.in[0] * g.in[1] * g.in[2] }
func (g *cnnGeom) outSize() int { return g.out[0] * g.out[1] * g.out[2] }
func (g *cnnGeom) kSize() int   { return g.k[0] * g.k[1] * g.k[2] }

// outShape prefixes the output spatial shape with the given leading dims.
func (g *cnnGeom) outShape(lead ...int) []int {
	return append(lead, g.out[cnnMaxRank-g.rank:]...)
}

// geom resolves padding and output sizes with ONNX's formulas; ceil_mode
// drops a last window that would start in the end padding, as onnxruntime
// and PyTorch do.
func (a *cnnAttrs) geom(inSp, kernel []int) (cnnGeom, error) {
	var g cnnGeom
	r := len(inSp)
	if r < 1 || r > cnnMaxRank {
		return g, fmt.Errorf("%d spatial dimensions are not supported (1 to %d)", r, cnnMaxRank)
	}
	if a.rank >= 0 && a.rank != r {
		return g, fmt.Errorf("input has %d spatial dimensions, attributes describe %d", r, a.rank)
	}
	if len(kernel) != r {
		return g, fmt.Errorf("kernel has %d dimensions for %d spatial input dimensions", len(kernel), r)
	}
	g.rank = r
	for i := range cnnMaxRank {
		g.in[i], g.out[i], g.k[i], g.s[i], g.d[i] = 1, 1, 1, 1, 1
	}
	for j := range r {
		ax := cnnMaxRank - r + j
		in, k, s, d := inSp[j], kernel[j], 1, 1
		if a.strides != nil {
			s = a.strides[j]
		}
		if a.dilations != nil {
			d = a.dilations[j]
		}
		dk := (k-1)*d + 1
		var pb, pe, out int
		switch a.autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			out = (in + s - 1) / s
			total := max(0, (out-1)*s+dk-in)
			pb = total / 2
			if a.autoPad == "SAME_LOWER" {
				pb = total - total/2
			}
			pe = total - pb
		default:
			if a.autoPad == "NOTSET" && a.pads != nil {
				pb, pe = a.pads[j], a.pads[j+r]
			}
			num := in + pb + pe - dk
			if num < 0 {
				return g, fmt.Errorf("input spatial shape %v with padding is smaller than the kernel %v (dilated)", inSp, kernel)
			}
			out = num/s + 1
			if a.ceil {
				out = (num+s-1)/s + 1
				if (out-1)*s >= in+pb {
					out--
				}
			}
		}
		g.in[ax], g.out[ax], g.k[ax], g.s[ax], g.d[ax], g.pb[ax], g.pe[ax] = in, out, k, s, d, pb, pe
	}
	return g, nil
}

// cnnTapRange returns the output positions [lo,hi) along one axis whose
// input index o*s+off lies inside [0,n).
func cnnTapRange(off, s, n, out int) (lo, hi int) {
	if off < 0 {
		lo = (-off + s - 1) / s
	}
	if n-1-off >= 0 {
		hi = min(out, (n-1-off)/s+1)
	}
	return lo, max(lo, hi)
}

func newConv(n *nodeInfo) (kernel, error) {
	a, err := cnnParseAttrs(n)
	if err != nil {
		return nil, err
	}
	group := int(n.attrInt("group", 1))
	if group < 1 {
		return nil, n.errorf("group %d must be at least 1", group)
	}
	if n.numInputs() < 2 {
		return nil, n.errorf("needs inputs X and W, got %d", n.numInputs())
	}
	if w := n.constInput(1); w != nil {
		if err := convCheckWeights(w, n.constInput(2), group, &a); err != nil {
			return nil, n.errorf("%v", err)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x, w := in[0], in[1]
		var b *tensor.Tensor
		if len(in) > 2 {
			b = in[2]
		}
		if err := convCheckWeights(w, b, group, &a); err != nil {
			return nil, err
		}
		if x.DType != w.DType {
			return nil, fmt.Errorf("input X is %v but W is %v", x.DType, w.DType)
		}
		if len(x.Shape) != len(w.Shape) {
			return nil, fmt.Errorf("input X shape %v does not match rank of W shape %v", x.Shape, w.Shape)
		}
		nb, c, m, cg := x.Shape[0], x.Shape[1], w.Shape[0], w.Shape[1]
		if cg*group != c {
			return nil, fmt.Errorf("input X has %d channels, W expects %d (%d per group, group %d)", c, cg*group, cg, group)
		}
		g, err := a.geom(x.Shape[2:], w.Shape[2:])
		if err != nil {
			return nil, err
		}
		y := tensor.New(x.DType, g.outShape(nb, m))
		switch x.DType {
		case tensor.Float32:
			var bias []float32
			if b != nil {
				bias = b.F32
			}
			convRun(x.F32, w.F32, bias, y.F32, nb, c, m, group, &g)
		case tensor.Float64:
			var bias []float64
			if b != nil {
				bias = b.F64
			}
			convRun(x.F64, w.F64, bias, y.F64, nb, c, m, group, &g)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// convCheckWeights validates W and the optional bias B; at load time when
// they are constants, else on every call.
func convCheckWeights(w, b *tensor.Tensor, group int, a *cnnAttrs) error {
	if w.DType != tensor.Float32 && w.DType != tensor.Float64 {
		return fmt.Errorf("datatype %v is not supported (FP32, FP64)", w.DType)
	}
	if len(w.Shape) < 3 {
		return fmt.Errorf("weight W shape %v needs at least 3 dimensions", w.Shape)
	}
	if r := len(w.Shape) - 2; r > cnnMaxRank {
		return fmt.Errorf("%d spatial dimensions are not supported (1 to %d)", r, cnnMaxRank)
	}
	if a.kernel != nil && !slices.Equal(a.kernel, w.Shape[2:]) {
		return fmt.Errorf("kernel_shape %v does not match weight W shape %v", a.kernel, w.Shape)
	}
	if a.rank >= 0 && a.rank != len(w.Shape)-2 {
		return fmt.Errorf("attributes describe %d spatial dimensions, weight W shape %v has %d", a.rank, w.Shape, len(w.Shape)-2)
	}
	m := w.Shape[0]
	if m%group != 0 {
		return fmt.Errorf("weight W has %d output channels, not a multiple of group %d", m, group)
	}
	if b != nil {
		if b.DType != w.DType {
			return fmt.Errorf("bias B is %v but W is %v", b.DType, w.DType)
		}
		if len(b.Shape) != 1 || b.Shape[0] != m {
			return fmt.Errorf("bias B shape %v, want [%d]", b.Shape, m)
		}
	}
	return nil
}

// convRun computes y (zeroed, [N, M, out...]) for x [N, C, in...] and
// w [M, C/group, k...]. Per batch item and group, Y_g = W_g · col(X_g) on
// gemm; a 1×1 stride-1 unpadded kernel uses X_g itself as col, and one
// output channel per single-channel group (depthwise) accumulates the taps
// directly. The weights and bias are only read.
func convRun[T float32 | float64](x, w, bias, y []T, nb, c, m, group int, g *cnnGeom) {
	cg, mg := c/group, m/group
	iS, oS, kS := g.inSize(), g.outSize(), g.kSize()
	kk := cg * kS
	pointwise := kS == 1 && g.s == [cnnMaxRank]int{1, 1, 1} && g.pb == [cnnMaxRank]int{} && g.pe == [cnnMaxRank]int{}
	direct := !pointwise && cg == 1 && mg == 1
	var col []T
	var spans []convSpan
	if direct {
		spans = convSpans(g)
	}
	if !pointwise && !direct {
		// The im2col block comes from the gemm buffer pool: every element
		// is written (convTap) before gemm reads it, and allocating it per
		// call was a third of a small CNN's garbage.
		buf := gemmGetBuf[T](kk * min(oS, max(1, convBlockCols/g.out[2])*g.out[2]))
		defer gemmPutBuf(buf)
		col = *buf
	}
	var tap [cnnMaxRank]int
	for ni := range nb {
		for gi := range group {
			xg := x[(ni*c+gi*cg)*iS : (ni*c+(gi+1)*cg)*iS]
			yg := y[(ni*m+gi*mg)*oS : (ni*m+(gi+1)*mg)*oS]
			wg := w[gi*mg*kk : (gi+1)*mg*kk]
			if bias != nil {
				for j := range mg {
					bv := bias[gi*mg+j]
					row := yg[j*oS : (j+1)*oS]
					for i := range row {
						row[i] = bv
					}
				}
			}
			switch {
			case pointwise:
				convGemm(mg, oS, kk, wg, kk, xg, oS, yg, oS)
			case direct:
				convDepthwise(yg, xg, wg, g, spans)
			default:
				// Column blocks of whole output rows keep the im2col
				// block cache resident while gemm streams over it.
				rows := g.out[0] * g.out[1]
				step := max(1, convBlockCols/g.out[2])
				for r0 := 0; r0 < rows; r0 += step {
					r1 := min(rows, r0+step)
					nc := (r1 - r0) * g.out[2]
					for ci := range cg {
						plane := xg[ci*iS : (ci+1)*iS]
						for t := range kS {
							tap = [cnnMaxRank]int{t / (g.k[1] * g.k[2]), t / g.k[2] % g.k[1], t % g.k[2]}
							row := (ci*kS + t) * nc
							convTap(col[row:row+nc], plane, g, tap, r0, r1)
						}
					}
					convGemm(mg, nc, kk, wg, kk, col, nc, yg[r0*g.out[2]:], oS)
				}
			}
		}
	}
}

// convGemm computes c += a·b for row-major a (m×k), b (k×n), c (m×n)
// with row strides lda, ldb, ldc.
func convGemm[T float32 | float64](m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	switch av := any(a).(type) {
	case []float32:
		gemmF32(false, false, m, n, k, 1, av, lda, any(b).([]float32), ldb, 1, any(c).([]float32), ldc)
	case []float64:
		gemmF64(false, false, m, n, k, 1, av, lda, any(b).([]float64), ldb, 1, any(c).([]float64), ldc)
	}
}

// convTap writes one im2col block row: for one kernel tap of one input
// channel plane, output rows [r0,r1) of the shifted plane, zero where the
// tap falls in the padding.
func convTap[T float32 | float64](dst, src []T, g *cnnGeom, tap [cnnMaxRank]int, r0, r1 int) {
	offW := tap[2]*g.d[2] - g.pb[2]
	sW, inW, outW := g.s[2], g.in[2], g.out[2]
	lo, hi := cnnTapRange(offW, sW, inW, outW)
	for r := r0; r < r1; r++ {
		od, oh := r/g.out[1], r%g.out[1]
		id := od*g.s[0] - g.pb[0] + tap[0]*g.d[0]
		ih := oh*g.s[1] - g.pb[1] + tap[1]*g.d[1]
		drow := dst[(r-r0)*outW : (r-r0+1)*outW]
		if id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || lo == hi {
			clear(drow)
			continue
		}
		srow := src[(id*g.in[1]+ih)*inW : (id*g.in[1]+ih+1)*inW]
		clear(drow[:lo])
		clear(drow[hi:])
		if sW == 1 {
			copy(drow[lo:hi], srow[lo+offW:hi+offW])
		} else {
			for ow := lo; ow < hi; ow++ {
				drow[ow] = srow[ow*sW+offW]
			}
		}
	}
}

// convSpan is, for one tap along the last axis, the input offset and the
// output positions [lo,hi) that read inside the input.
type convSpan struct{ off, lo, hi int }

func convSpans(g *cnnGeom) []convSpan {
	spans := make([]convSpan, g.k[2])
	for t := range spans {
		off := t*g.d[2] - g.pb[2]
		lo, hi := cnnTapRange(off, g.s[2], g.in[2], g.out[2])
		spans[t] = convSpan{off, lo, hi}
	}
	return spans
}

// convDepthwise convolves one channel plane with its own kernel w, adding
// into y. Output-row-major order keeps the row being accumulated and the
// input rows it reads in L1 whatever the plane size.
func convDepthwise[T float32 | float64](y, x, w []T, g *cnnGeom, spans []convSpan) {
	sW, inW, outW := g.s[2], g.in[2], g.out[2]
	for r := range g.out[0] * g.out[1] {
		od, oh := r/g.out[1], r%g.out[1]
		drow := y[r*outW : (r+1)*outW]
		t := 0
		for k0 := range g.k[0] {
			id := od*g.s[0] - g.pb[0] + k0*g.d[0]
			for k1 := range g.k[1] {
				ih := oh*g.s[1] - g.pb[1] + k1*g.d[1]
				if id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] {
					t += g.k[2]
					continue
				}
				srow := x[(id*g.in[1]+ih)*inW : (id*g.in[1]+ih+1)*inW]
				for _, sp := range spans {
					wv := w[t]
					t++
					if sW == 1 {
						d, s := drow[sp.lo:sp.hi], srow[sp.lo+sp.off:sp.hi+sp.off]
						s = s[:len(d)] // lets the compiler drop the bounds check
						for i := range d {
							d[i] += wv * s[i]
						}
					} else {
						for ow := sp.lo; ow < sp.hi; ow++ {
							drow[ow] += wv * srow[ow*sW+sp.off]
						}
					}
				}
			}
		}
	}
}
