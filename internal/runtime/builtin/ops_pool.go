package builtin

import (
	"fmt"
	"math"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func init() {
	register("MaxPool", newMaxPool)
	register("AveragePool", newAveragePool)
	register("GlobalAveragePool", newGlobalAveragePool)
}

// poolAxis describes one output position along one axis: the first input
// index of its window and the taps [lo,hi) that fall inside the input.
// padded counts the taps inside input plus padding (count_include_pad).
type poolAxis struct{ start, lo, hi, padded int }

// poolAttrs parses the shared pooling attributes; kernel_shape is required.
func poolAttrs(n *nodeInfo) (cnnAttrs, error) {
	a, err := cnnParseAttrs(n)
	if err != nil {
		return a, err
	}
	if a.kernel == nil {
		return a, n.errorf("kernel_shape attribute is required")
	}
	switch c := n.attrInt("ceil_mode", 0); c {
	case 0, 1:
		a.ceil = c == 1
	default:
		return a, n.errorf("ceil_mode %d must be 0 or 1", c)
	}
	return a, nil
}

func newMaxPool(n *nodeInfo) (kernel, error) {
	a, err := poolAttrs(n)
	if err != nil {
		return nil, err
	}
	if so := n.attrInt("storage_order", 0); so != 0 {
		return nil, n.errorf("storage_order %d is not supported (only 0, row major)", so)
	}
	wantIdx := len(n.node.Outputs) > 1 && n.node.Outputs[1] != ""
	return poolKernel(&a, true, false, wantIdx), nil
}

func newAveragePool(n *nodeInfo) (kernel, error) {
	a, err := poolAttrs(n)
	if err != nil {
		return nil, err
	}
	cip := n.attrInt("count_include_pad", 0)
	if cip != 0 && cip != 1 {
		return nil, n.errorf("count_include_pad %d must be 0 or 1", cip)
	}
	return poolKernel(&a, false, cip == 1, false), nil
}

func poolKernel(a *cnnAttrs, isMax, includePad, wantIdx bool) kernel {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		if len(x.Shape) < 3 {
			return nil, fmt.Errorf("input shape %v needs at least 3 dimensions (N, C, spatial...)", x.Shape)
		}
		g, err := a.geom(x.Shape[2:], a.kernel)
		if err != nil {
			return nil, err
		}
		y := tensor.New(x.DType, g.outShape(x.Shape[0], x.Shape[1]))
		var idx []int64
		out := []*tensor.Tensor{y}
		if wantIdx {
			it := tensor.New(tensor.Int64, y.Shape)
			idx = it.I64
			out = append(out, it)
		}
		axes := poolAxes(&g)
		nc := x.Shape[0] * x.Shape[1]
		switch x.DType {
		case tensor.Float32:
			poolRun(x.F32, y.F32, idx, nc, &g, &axes, isMax, includePad)
		case tensor.Float64:
			poolRun(x.F64, y.F64, idx, nc, &g, &axes, isMax, includePad)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (FP32, FP64)", x.DType)
		}
		return out, nil
	}
}

// poolAxes precomputes the window bounds of every output position per axis,
// so the inner loops need no bounds checks against the padding.
func poolAxes(g *cnnGeom) [cnnMaxRank][]poolAxis {
	var axes [cnnMaxRank][]poolAxis
	for ax := range cnnMaxRank {
		axes[ax] = make([]poolAxis, g.out[ax])
		s, d, k, n := g.s[ax], g.d[ax], g.k[ax], g.in[ax]
		for o := range axes[ax] {
			start := o*s - g.pb[ax]
			// Taps t with 0 <= start+t*d < n, and with start+t*d < n+pe.
			lo, hi := cnnTapRange(start, d, n, k)
			padded := 0
			if last := n + g.pe[ax] - 1 - start; last >= 0 {
				padded = min(k, last/d+1)
			}
			axes[ax][o] = poolAxis{start: start, lo: lo, hi: hi, padded: padded}
		}
	}
	return axes
}

func poolRun[T float32 | float64](x, y []T, idx []int64, nc int, g *cnnGeom, axes *[cnnMaxRank][]poolAxis, isMax, includePad bool) {
	iS, oS := g.inSize(), g.outSize()
	in1, in2 := g.in[1], g.in[2]
	d0, d1, d2 := g.d[0], g.d[1], g.d[2]
	negInf := T(math.Inf(-1))
	for c := range nc {
		xs := x[c*iS : (c+1)*iS]
		o := c * oS
		for _, a0 := range axes[0] {
			for _, a1 := range axes[1] {
				for _, a2 := range axes[2] {
					if isMax {
						best, bi := negInf, -1
						for t0 := a0.lo; t0 < a0.hi; t0++ {
							for t1 := a1.lo; t1 < a1.hi; t1++ {
								base := ((a0.start+t0*d0)*in1+a1.start+t1*d1)*in2 + a2.start
								for t2 := a2.lo; t2 < a2.hi; t2++ {
									if v := xs[base+t2*d2]; v > best || bi < 0 {
										best, bi = v, base+t2*d2
									}
								}
							}
						}
						y[o] = best
						if idx != nil {
							idx[o] = int64(c*iS + bi)
						}
					} else {
						var sum T
						for t0 := a0.lo; t0 < a0.hi; t0++ {
							for t1 := a1.lo; t1 < a1.hi; t1++ {
								base := ((a0.start+t0*d0)*in1+a1.start+t1*d1)*in2 + a2.start
								for t2 := a2.lo; t2 < a2.hi; t2++ {
									sum += xs[base+t2*d2]
								}
							}
						}
						cnt := (a0.hi - a0.lo) * (a1.hi - a1.lo) * (a2.hi - a2.lo)
						if includePad {
							cnt = a0.padded * a1.padded * a2.padded
						}
						y[o] = sum / T(cnt)
					}
					o++
				}
			}
		}
	}
}

func newGlobalAveragePool(n *nodeInfo) (kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input shape %v needs at least 2 dimensions (N, C, spatial...)", x.Shape)
		}
		shape := append([]int(nil), x.Shape...)
		for i := 2; i < len(shape); i++ {
			shape[i] = 1
		}
		y := tensor.New(x.DType, shape)
		nc := x.Shape[0] * x.Shape[1]
		switch x.DType {
		case tensor.Float32:
			globalAvg(x.F32, y.F32, nc)
		case tensor.Float64:
			globalAvg(x.F64, y.F64, nc)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (FP32, FP64)", x.DType)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

func globalAvg[T float32 | float64](x, y []T, nc int) {
	if nc == 0 {
		return
	}
	plane := len(x) / nc
	for c := range nc {
		var sum T
		for _, v := range x[c*plane : (c+1)*plane] {
			sum += v
		}
		y[c] = sum / T(plane)
	}
}
