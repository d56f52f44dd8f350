package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func init() { register("Pad", newPad) }

// padConst is the constant-mode fill value, one field per datatype.
type padConst struct {
	f32  float32
	f64  float64
	i32  int32
	i64  int64
	bool bool
}

func newPad(n *nodeInfo) (kernel, error) {
	mode := n.attrString("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge":
	case "wrap":
		if n.opset < 19 {
			return nil, n.errorf("mode %q needs opset 19 or later (model uses %d)", mode, n.opset)
		}
	default:
		return nil, n.errorf("mode %q is not supported (constant, reflect, edge, wrap)", mode)
	}
	if !n.hasInput(1) {
		return nil, n.errorf("input pads is required")
	}
	if n.hasInput(3) && n.opset < 18 {
		return nil, n.errorf("input axes needs opset 18 or later (model uses %d)", n.opset)
	}
	if p := n.constInput(1); p != nil && p.DType != tensor.Int64 {
		return nil, n.errorf("pads datatype %v, want INT64", p.DType)
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		var cv, axes *tensor.Tensor
		if len(in) > 2 {
			cv = in[2]
		}
		if len(in) > 3 {
			axes = in[3]
		}
		pb, pe, err := padAmounts(x.Shape, in[1], axes)
		if err != nil {
			return nil, err
		}
		var fill padConst
		if cv != nil && mode == "constant" {
			if cv.DType != x.DType || cv.Len() != 1 {
				return nil, fmt.Errorf("constant_value must be one %v value, got %v shape %v", x.DType, cv.DType, cv.Shape)
			}
			switch cv.DType {
			case tensor.Float32:
				fill.f32 = cv.F32[0]
			case tensor.Float64:
				fill.f64 = cv.F64[0]
			case tensor.Int32:
				fill.i32 = cv.I32[0]
			case tensor.Int64:
				fill.i64 = cv.I64[0]
			case tensor.Bool:
				fill.bool = cv.Bool[0]
			}
		}
		maps, shape, span, err := padMaps(x.Shape, pb, pe, mode)
		if err != nil {
			return nil, err
		}
		y := tensor.New(x.DType, shape)
		switch x.DType {
		case tensor.Float32:
			padRun(x.F32, y.F32, x.Shape, shape, maps, span, fill.f32)
		case tensor.Float64:
			padRun(x.F64, y.F64, x.Shape, shape, maps, span, fill.f64)
		case tensor.Int32:
			padRun(x.I32, y.I32, x.Shape, shape, maps, span, fill.i32)
		case tensor.Int64:
			padRun(x.I64, y.I64, x.Shape, shape, maps, span, fill.i64)
		case tensor.Bool:
			padRun(x.Bool, y.Bool, x.Shape, shape, maps, span, fill.bool)
		default:
			return nil, fmt.Errorf("datatype %v is not supported", x.DType)
		}
		return []*tensor.Tensor{y}, nil
	}, nil
}

// padAmounts expands the pads input (and the optional axes) to per-axis
// begin and end amounts; negative amounts crop.
func padAmounts(shape []int, pads, axes *tensor.Tensor) (pb, pe []int, err error) {
	r := len(shape)
	if pads.DType != tensor.Int64 || len(pads.Shape) > 1 {
		return nil, nil, fmt.Errorf("pads must be a 1-D INT64 tensor, got %v shape %v", pads.DType, pads.Shape)
	}
	ax := make([]int, 0, r)
	if axes == nil {
		for i := range r {
			ax = append(ax, i)
		}
	} else {
		if len(axes.Shape) > 1 || (axes.DType != tensor.Int64 && axes.DType != tensor.Int32) {
			return nil, nil, fmt.Errorf("axes must be a 1-D INT32 or INT64 tensor, got %v shape %v", axes.DType, axes.Shape)
		}
		for i := range axes.Len() {
			a := int(axes.Float64At(i))
			if a < -r || a >= r {
				return nil, nil, fmt.Errorf("axis %d is out of range for rank %d", a, r)
			}
			if a < 0 {
				a += r
			}
			ax = append(ax, a)
		}
	}
	if pads.Len() != 2*len(ax) {
		return nil, nil, fmt.Errorf("pads has %d values, want %d (begin and end for %d axes)", pads.Len(), 2*len(ax), len(ax))
	}
	pb, pe = make([]int, r), make([]int, r)
	seen := make([]bool, r)
	for i, a := range ax {
		if seen[a] {
			return nil, nil, fmt.Errorf("axis %d is repeated in axes", a)
		}
		seen[a] = true
		pb[a], pe[a] = int(pads.I64[i]), int(pads.I64[i+len(ax)])
	}
	return pb, pe, nil
}

// padMaps gives for every axis and output index the input index to read,
// or -1 for the constant, the output shape, and the output span of the last
// axis that reads the input unshifted. As in onnxruntime, negative pads crop
// first and reflect, edge and wrap then refer to the cropped input.
func padMaps(shape, pb, pe []int, mode string) (maps [][]int, out []int, span [2]int, err error) {
	maps = make([][]int, len(shape))
	out = make([]int, len(shape))
	for a, dim := range shape {
		cropB, cropE := max(0, -pb[a]), max(0, -pe[a])
		addB, addE := max(0, pb[a]), max(0, pe[a])
		m := dim - cropB - cropE // cropped size
		if m < 0 {
			return nil, nil, span, fmt.Errorf("pads %d and %d crop more than axis %d of size %d", pb[a], pe[a], a, dim)
		}
		if m == 0 && addB+addE > 0 && mode != "constant" {
			return nil, nil, span, fmt.Errorf("mode %s cannot pad axis %d, which is empty after cropping", mode, a)
		}
		out[a] = m + addB + addE
		mp := make([]int, out[a])
		for o := range mp {
			j := o - addB
			if j < 0 || j >= m {
				switch mode {
				case "constant":
					mp[o] = -1
					continue
				case "edge":
					j = min(max(j, 0), m-1)
				case "wrap":
					j = ((j % m) + m) % m
				case "reflect":
					j = padReflect(j, m)
				}
			}
			mp[o] = j + cropB
		}
		maps[a] = mp
		span = [2]int{addB, addB + m}
	}
	return maps, out, span, nil
}

// padReflect mirrors j into [0,m) without repeating the edge element,
// periodically for pads wider than the axis (as numpy does).
func padReflect(j, m int) int {
	if m == 1 {
		return 0
	}
	p := 2 * (m - 1)
	j = ((j % p) + p) % p
	if j >= m {
		j = p - j
	}
	return j
}

// padRun fills y row by row (rows along the last axis): rows whose outer
// indices hit the constant are filled, others are gathered, with the
// unshifted middle copied in one go.
func padRun[T any](x, y []T, inShape, outShape []int, maps [][]int, span [2]int, fill T) {
	r := len(outShape)
	if len(y) == 0 {
		return
	}
	if r == 0 {
		y[0] = x[0]
		return
	}
	last := maps[r-1]
	inW, outW := inShape[r-1], outShape[r-1]
	// The unshifted interior of the last axis is copied in one go.
	lo, hi := span[0], span[1]
	idx := make([]int, r) // odometer over the outer axes
	for row := 0; row*outW < len(y); row++ {
		dst := y[row*outW : (row+1)*outW]
		src, inside := 0, true
		for a := 0; a < r-1; a++ {
			j := maps[a][idx[a]]
			if j < 0 {
				inside = false
				break
			}
			src = src*inShape[a] + j
		}
		if !inside {
			for i := range dst {
				dst[i] = fill
			}
		} else {
			s := x[src*inW : (src+1)*inW]
			for o := range lo {
				dst[o] = padPick(s, last[o], fill)
			}
			if hi > lo {
				copy(dst[lo:hi], s[last[lo]:last[lo]+hi-lo])
			}
			for o := hi; o < outW; o++ {
				dst[o] = padPick(s, last[o], fill)
			}
		}
		for a := r - 2; a >= 0; a-- {
			if idx[a]++; idx[a] < outShape[a] {
				break
			}
			idx[a] = 0
		}
	}
}

func padPick[T any](s []T, j int, fill T) T {
	if j < 0 {
		return fill
	}
	return s[j]
}
