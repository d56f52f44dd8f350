package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// ArgMax: index of the largest value along one axis, as INT64.

func init() {
	register("ArgMax", buildArgMax)
}

func buildArgMax(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	axis := n.attrInt("axis", 0)
	keepDims := n.attrInt("keepdims", 1) != 0
	last := n.attrInt("select_last_index", 0) != 0
	if c := n.constInput(0); c != nil && c.DType == tensor.Bool {
		return nil, n.errorf("input datatype BOOL is not supported (FP32, FP64, INT32, INT64)")
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		if r == 0 {
			return nil, fmt.Errorf("input must have at least 1 dimension, got a scalar")
		}
		a, err := shapeNormAxis(axis, r)
		if err != nil {
			return nil, err
		}
		dim := x.Shape[a]
		outer, inner := shapeProd(x.Shape[:a]), shapeProd(x.Shape[a+1:])
		if dim == 0 && outer*inner > 0 {
			return nil, fmt.Errorf("cannot take ArgMax over axis %d of size 0 (shape %v)", a, x.Shape)
		}
		shape := append([]int(nil), x.Shape...)
		if keepDims {
			shape[a] = 1
		} else {
			shape = append(shape[:a], shape[a+1:]...)
		}
		out := tensor.New(tensor.Int64, shape)
		switch x.DType {
		case tensor.Float32:
			argmaxInto(out.I64, x.F32, outer, dim, inner, last)
		case tensor.Float64:
			argmaxInto(out.I64, x.F64, outer, dim, inner, last)
		case tensor.Int32:
			argmaxInto(out.I64, x.I32, outer, dim, inner, last)
		case tensor.Int64:
			argmaxInto(out.I64, x.I64, outer, dim, inner, last)
		default:
			return nil, fmt.Errorf("input datatype %v is not supported (FP32, FP64, INT32, INT64)", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// argmaxInto walks the axis in the outer loop and the contiguous inner
// positions in the inner loop, so memory is read sequentially; best holds
// the running maximum of each inner position.
func argmaxInto[T castNumber](dst []int64, src []T, outer, dim, inner int, last bool) {
	if len(dst) == 0 {
		return
	}
	best := make([]T, inner)
	for o := 0; o < outer; o++ {
		idx := dst[o*inner : (o+1)*inner]
		base := o * dim * inner
		copy(best, src[base:base+inner])
		for k := 1; k < dim; k++ {
			row := src[base+k*inner : base+(k+1)*inner]
			if last {
				for i, v := range row {
					if v >= best[i] {
						best[i], idx[i] = v, int64(k)
					}
				}
			} else {
				for i, v := range row {
					if v > best[i] {
						best[i], idx[i] = v, int64(k)
					}
				}
			}
		}
	}
}
