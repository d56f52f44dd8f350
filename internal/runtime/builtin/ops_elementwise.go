package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Add, Sub, Mul, Div with numpy broadcasting on FP32, FP64, INT32, INT64.
// Integer division truncates toward zero like C (Go's / does), and a zero
// divisor is an error rather than a panic.

func init() {
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		register(op, mathBinaryFactory(op))
	}
}

type mathNum interface {
	float32 | float64 | int32 | int64
}

type mathInt interface{ int32 | int64 }

// mathBinFns are one operator's loops for one type: both operands
// vectors, or one of them a single value repeated. The broadcasting driver
// calls them once per contiguous run, so the per-element work is a plain
// loop the compiler can keep tight.
type mathBinFns[T mathNum] struct {
	vv func(d, x, y []T)
	vs func(d, x []T, y T)
	sv func(d []T, x T, y []T)
}

func mathBinaryFactory(op string) opFactory {
	return func(n *nodeInfo) (kernel, error) {
		for i := 0; i < 2; i++ {
			if c := n.constInput(i); c != nil && !mathIsNum(c.DType) {
				return nil, n.errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", c.DType)
			}
		}
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			if len(in) < 2 || in[0] == nil || in[1] == nil {
				return nil, fmt.Errorf("needs two inputs")
			}
			out, err := mathBinary(op, in[0], in[1])
			if err != nil {
				return nil, err
			}
			return []*tensor.Tensor{out}, nil
		}, nil
	}
}

func mathIsNum(dt tensor.DType) bool {
	return dt == tensor.Float32 || dt == tensor.Float64 || dt == tensor.Int32 || dt == tensor.Int64
}

func mathBinary(op string, a, b *tensor.Tensor) (*tensor.Tensor, error) {
	if a.DType != b.DType {
		return nil, fmt.Errorf("input datatypes %v and %v differ", a.DType, b.DType)
	}
	shape, err := mathBroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	out := &tensor.Tensor{DType: a.DType, Shape: shape}
	switch a.DType {
	case tensor.Float32:
		out.F32, err = mathApply(mathFns[float32](op), a.F32, b.F32, a.Shape, b.Shape, shape)
	case tensor.Float64:
		out.F64, err = mathApply(mathFns[float64](op), a.F64, b.F64, a.Shape, b.Shape, shape)
	case tensor.Int32:
		out.I32, err = mathApplyInt(op, a.I32, b.I32, a.Shape, b.Shape, shape)
	case tensor.Int64:
		out.I64, err = mathApplyInt(op, a.I64, b.I64, a.Shape, b.Shape, shape)
	default:
		return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", a.DType)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func mathApplyInt[T mathInt](op string, x, y []T, xs, ys, shape []int) ([]T, error) {
	if op == "Div" && tensor.NumElements(shape) > 0 {
		// Every divisor element is used at least once when the output is
		// not empty, so one scan settles it.
		for _, v := range y {
			if v == 0 {
				return nil, fmt.Errorf("integer division by zero")
			}
		}
	}
	return mathApply(mathFns[T](op), x, y, xs, ys, shape)
}

// mathApply computes the broadcast result into a new slice: one call on
// the whole data when shapes agree or one side is a single value,
// otherwise one call per contiguous run.
func mathApply[T mathNum](f mathBinFns[T], x, y []T, xs, ys, shape []int) ([]T, error) {
	n := tensor.NumElements(shape)
	if len(x) != tensor.NumElements(xs) || len(y) != tensor.NumElements(ys) {
		return nil, fmt.Errorf("input data does not match its shape")
	}
	d := make([]T, n)
	switch {
	case n == 0:
	case len(x) == n && len(y) == n:
		f.vv(d, x, y)
	case len(x) == n && len(y) == 1:
		f.vs(d, x, y[0])
	case len(y) == n && len(x) == 1:
		f.sv(d, x[0], y)
	default:
		mathApplyBcast(f, d, x, y, mathNewBcast(shape, xs, ys))
	}
	return d, nil
}

// mathApplyBcast walks the runs of a two-input broadcast. It is
// mathBcast.runs inlined for two inputs: broadcasting over a short last
// axis makes runs short, and the per-run overhead then shows.
func mathApplyBcast[T mathNum](f mathBinFns[T], d, x, y []T, bc *mathBcast) {
	w, sx, sy := bc.inner, bc.step[0], bc.step[1]
	dims, stx, sty := bc.dims, bc.strides[0], bc.strides[1]
	idx := make([]int, len(dims))
	xo, yo := 0, 0
	for o := 0; o+w <= len(d); o += w {
		dst := d[o : o+w]
		switch {
		case sx == 1 && sy == 1:
			f.vv(dst, x[xo:xo+w], y[yo:yo+w])
		case sx == 1:
			f.vs(dst, x[xo:xo+w], y[yo])
		case sy == 1:
			f.sv(dst, x[xo], y[yo:yo+w])
		default: // both repeated: only for single-element runs
			f.vv(dst, x[xo:xo+1], y[yo:yo+1])
		}
		for ax := len(idx) - 1; ax >= 0; ax-- {
			xo += stx[ax]
			yo += sty[ax]
			if idx[ax]++; idx[ax] < dims[ax] {
				break
			}
			xo -= stx[ax] * dims[ax]
			yo -= sty[ax] * dims[ax]
			idx[ax] = 0
		}
	}
}

func mathFns[T mathNum](op string) mathBinFns[T] {
	switch op {
	case "Add":
		return mathBinFns[T]{mathAddVV[T], mathAddVS[T], mathAddSV[T]}
	case "Sub":
		return mathBinFns[T]{mathSubVV[T], mathSubVS[T], mathSubSV[T]}
	case "Mul":
		return mathBinFns[T]{mathMulVV[T], mathMulVS[T], mathMulSV[T]}
	default:
		return mathBinFns[T]{mathDivVV[T], mathDivVS[T], mathDivSV[T]}
	}
}

// The loops. Reslicing x and y to len(d) lets the compiler drop the bounds
// checks inside.

func mathAddVV[T mathNum](d, x, y []T) {
	x, y = x[:len(d)], y[:len(d)]
	for i := range d {
		d[i] = x[i] + y[i]
	}
}

func mathAddVS[T mathNum](d, x []T, y T) {
	x = x[:len(d)]
	for i := range d {
		d[i] = x[i] + y
	}
}

func mathAddSV[T mathNum](d []T, x T, y []T) {
	y = y[:len(d)]
	for i := range d {
		d[i] = x + y[i]
	}
}

func mathSubVV[T mathNum](d, x, y []T) {
	x, y = x[:len(d)], y[:len(d)]
	for i := range d {
		d[i] = x[i] - y[i]
	}
}

func mathSubVS[T mathNum](d, x []T, y T) {
	x = x[:len(d)]
	for i := range d {
		d[i] = x[i] - y
	}
}

func mathSubSV[T mathNum](d []T, x T, y []T) {
	y = y[:len(d)]
	for i := range d {
		d[i] = x - y[i]
	}
}

func mathMulVV[T mathNum](d, x, y []T) {
	x, y = x[:len(d)], y[:len(d)]
	for i := range d {
		d[i] = x[i] * y[i]
	}
}

func mathMulVS[T mathNum](d, x []T, y T) {
	x = x[:len(d)]
	for i := range d {
		d[i] = x[i] * y
	}
}

func mathMulSV[T mathNum](d []T, x T, y []T) {
	y = y[:len(d)]
	for i := range d {
		d[i] = x * y[i]
	}
}

func mathDivVV[T mathNum](d, x, y []T) {
	x, y = x[:len(d)], y[:len(d)]
	for i := range d {
		d[i] = x[i] / y[i]
	}
}

func mathDivVS[T mathNum](d, x []T, y T) {
	x = x[:len(d)]
	for i := range d {
		d[i] = x[i] / y
	}
}

func mathDivSV[T mathNum](d []T, x T, y []T) {
	y = y[:len(d)]
	for i := range d {
		d[i] = x / y[i]
	}
}
