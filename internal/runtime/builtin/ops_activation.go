package builtin

import (
	"fmt"
	"math"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Activations and the pass-through operators: Relu, LeakyRelu, Sigmoid,
// Tanh, Softmax, Clip, Identity, Dropout (inference).

func init() {
	register("Relu", mathReluFactory)
	register("LeakyRelu", mathLeakyReluFactory)
	register("Sigmoid", mathUnaryFloat(mathSigmoid[float32], mathSigmoid[float64]))
	register("Tanh", mathUnaryFloat(mathTanh[float32], mathTanh[float64]))
	register("Softmax", mathSoftmaxFactory)
	register("Clip", mathClipFactory)
	register("Identity", mathIdentityFactory)
	register("Dropout", mathDropoutFactory)
}

// mathUnaryFloat builds a kernel for a float-only elementwise function
// given as a loop per type.
func mathUnaryFloat(f32 func(d, x []float32), f64 func(d, x []float64)) opFactory {
	return func(n *nodeInfo) (kernel, error) {
		return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
			x := in[0]
			out := &tensor.Tensor{DType: x.DType, Shape: x.Shape}
			switch x.DType {
			case tensor.Float32:
				out.F32 = make([]float32, len(x.F32))
				f32(out.F32, x.F32)
			case tensor.Float64:
				out.F64 = make([]float64, len(x.F64))
				f64(out.F64, x.F64)
			default:
				return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64)", x.DType)
			}
			return []*tensor.Tensor{out}, nil
		}, nil
	}
}

func mathReluFactory(n *nodeInfo) (kernel, error) {
	ints := n.opset >= 14 // Relu-14 added the signed integer types
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		out := &tensor.Tensor{DType: x.DType, Shape: x.Shape}
		switch {
		case x.DType == tensor.Float32:
			out.F32 = mathRelu(x.F32)
		case x.DType == tensor.Float64:
			out.F64 = mathRelu(x.F64)
		case x.DType == tensor.Int32 && ints:
			out.I32 = mathRelu(x.I32)
		case x.DType == tensor.Int64 && ints:
			out.I64 = mathRelu(x.I64)
		default:
			return nil, fmt.Errorf("datatype %v is not supported at opset %d", x.DType, n.opset)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

func mathRelu[T mathNum](x []T) []T {
	d := make([]T, len(x))
	for i, v := range x {
		if v < 0 { // NaN stays NaN
			v = 0
		}
		d[i] = v
	}
	return d
}

func mathLeakyReluFactory(n *nodeInfo) (kernel, error) {
	alpha := n.attrFloat("alpha", 0.01)
	return mathUnaryFloat(
		func(d, x []float32) { mathLeaky(d, x, alpha) },
		func(d, x []float64) { mathLeaky(d, x, float64(alpha)) },
	)(n)
}

func mathLeaky[T float32 | float64](d, x []T, alpha T) {
	x = x[:len(d)]
	for i, v := range x {
		if v < 0 {
			v *= alpha
		}
		d[i] = v
	}
}

// mathSigmoid computes 1/(1+e^-x) in float64; for very negative x, e^-x
// overflows to +Inf and the result is the correct limit 0.
func mathSigmoid[T float32 | float64](d, x []T) {
	x = x[:len(d)]
	for i, v := range x {
		d[i] = T(1 / (1 + math.Exp(-float64(v))))
	}
}

func mathTanh[T float32 | float64](d, x []T) {
	x = x[:len(d)]
	for i, v := range x {
		d[i] = T(math.Tanh(float64(v)))
	}
}

// Softmax (opset 13+): normalise along one axis, default the last.
func mathSoftmaxFactory(n *nodeInfo) (kernel, error) {
	axis := n.attrInt("axis", -1)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		r := int64(len(x.Shape))
		ax := axis
		if ax < 0 {
			ax += r
		}
		if ax < 0 || ax >= r {
			return nil, fmt.Errorf("axis %d is out of range for input of rank %d", axis, r)
		}
		outer := tensor.NumElements(x.Shape[:ax])
		size := x.Shape[ax]
		inner := tensor.NumElements(x.Shape[ax+1:])
		out := &tensor.Tensor{DType: x.DType, Shape: x.Shape}
		switch x.DType {
		case tensor.Float32:
			out.F32 = make([]float32, len(x.F32))
			mathSoftmax(out.F32, x.F32, outer, size, inner)
		case tensor.Float64:
			out.F64 = make([]float64, len(x.F64))
			mathSoftmax(out.F64, x.F64, outer, size, inner)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64)", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// mathSoftmax subtracts the maximum before exponentiating so large inputs
// do not overflow, and sums in float64. When the axis is not the last, the
// inner positions are processed side by side (one pass per axis element
// over a contiguous row) instead of striding through memory.
func mathSoftmax[T float32 | float64](d, x []T, outer, size, inner int) {
	if size == 0 || inner == 0 {
		return
	}
	block := size * inner
	if inner == 1 {
		for o := 0; o < outer; o++ {
			mathSoftmaxRow(d[o*size:(o+1)*size], x[o*size:(o+1)*size])
		}
		return
	}
	mx := make([]T, inner)
	sum := make([]float64, inner)
	for o := 0; o < outer; o++ {
		xs, ds := x[o*block:(o+1)*block], d[o*block:(o+1)*block]
		copy(mx, xs[:inner])
		for s := 1; s < size; s++ {
			for i, v := range xs[s*inner : (s+1)*inner] {
				if v > mx[i] {
					mx[i] = v
				}
			}
		}
		clear(sum)
		for s := 0; s < size; s++ {
			row, dst := xs[s*inner:(s+1)*inner], ds[s*inner:(s+1)*inner]
			for i, v := range row {
				e := math.Exp(float64(v - mx[i]))
				dst[i] = T(e)
				sum[i] += e
			}
		}
		for i := range sum {
			sum[i] = 1 / sum[i]
		}
		for s := 0; s < size; s++ {
			dst := ds[s*inner : (s+1)*inner]
			for i := range dst {
				dst[i] = T(float64(dst[i]) * sum[i])
			}
		}
	}
}

// mathSoftmaxRow is the contiguous case (axis last), the common one.
func mathSoftmaxRow[T float32 | float64](d, x []T) {
	x = x[:len(d)]
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	var sum float64
	for i, v := range x {
		e := math.Exp(float64(v - mx))
		d[i] = T(e)
		sum += e
	}
	inv := 1 / sum
	for i, v := range d {
		d[i] = T(float64(v) * inv)
	}
}

// Clip (opset 11+ form): bounds are optional scalar inputs, absent meaning
// unbounded. A bound above the other yields max, as in numpy.clip.
func mathClipFactory(n *nodeInfo) (kernel, error) {
	for i := 1; i <= 2; i++ {
		if c := n.constInput(i); c != nil {
			if !mathIsNum(c.DType) {
				return nil, n.errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", c.DType)
			}
			if c.Len() != 1 {
				return nil, n.errorf("bound %d must be a scalar, has shape %v", i, c.Shape)
			}
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		var lo, hi *tensor.Tensor
		if len(in) > 1 {
			lo = in[1]
		}
		if len(in) > 2 {
			hi = in[2]
		}
		for _, b := range []*tensor.Tensor{lo, hi} {
			if b == nil {
				continue
			}
			if b.DType != x.DType {
				return nil, fmt.Errorf("bound datatype %v differs from input datatype %v", b.DType, x.DType)
			}
			if b.Len() != 1 {
				return nil, fmt.Errorf("bounds must be scalars, got shape %v", b.Shape)
			}
		}
		out := &tensor.Tensor{DType: x.DType, Shape: x.Shape}
		switch x.DType {
		case tensor.Float32:
			inf := float32(math.Inf(1))
			out.F32 = mathClipRun(x, lo, hi, func(t *tensor.Tensor) []float32 { return t.F32 }, -inf, inf)
		case tensor.Float64:
			out.F64 = mathClipRun(x, lo, hi, func(t *tensor.Tensor) []float64 { return t.F64 }, math.Inf(-1), math.Inf(1))
		case tensor.Int32:
			out.I32 = mathClipRun(x, lo, hi, func(t *tensor.Tensor) []int32 { return t.I32 }, math.MinInt32, math.MaxInt32)
		case tensor.Int64:
			out.I64 = mathClipRun(x, lo, hi, func(t *tensor.Tensor) []int64 { return t.I64 }, math.MinInt64, math.MaxInt64)
		default:
			return nil, fmt.Errorf("datatype %v is not supported (supported: FP32, FP64, INT32, INT64)", x.DType)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// mathClipRun reads the bounds (an absent one is the type's extreme) and
// clips; data picks the typed slice of a tensor.
func mathClipRun[T mathNum](x, lo, hi *tensor.Tensor, data func(*tensor.Tensor) []T, lowest, highest T) []T {
	if lo != nil {
		lowest = data(lo)[0]
	}
	if hi != nil {
		highest = data(hi)[0]
	}
	return mathClip(data(x), lowest, highest)
}

// mathClip leaves NaN as NaN: both comparisons are false for it.
func mathClip[T mathNum](x []T, lo, hi T) []T {
	d := make([]T, len(x))
	for i, v := range x {
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		d[i] = v
	}
	return d
}

func mathIdentityFactory(n *nodeInfo) (kernel, error) {
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		return []*tensor.Tensor{in[0]}, nil
	}, nil
}

// Dropout at inference is the identity; the optional mask output is all
// true. Training mode is refused: at load time when it is a constant,
// otherwise when a request turns it on.
func mathDropoutFactory(n *nodeInfo) (kernel, error) {
	if t := n.constInput(2); t != nil && mathTruthy(t) {
		return nil, n.errorf("training_mode=true is not supported (inference only)")
	}
	wantMask := len(n.node.Outputs) > 1 && n.node.Outputs[1] != ""
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		if len(in) > 2 && in[2] != nil && mathTruthy(in[2]) {
			return nil, fmt.Errorf("training_mode=true is not supported (inference only)")
		}
		if !wantMask {
			return []*tensor.Tensor{x}, nil
		}
		mask := tensor.New(tensor.Bool, x.Shape)
		for i := range mask.Bool {
			mask.Bool[i] = true
		}
		return []*tensor.Tensor{x, mask}, nil
	}, nil
}

// mathTruthy reads a scalar flag tensor (BOOL per the spec; numbers are
// accepted as nonzero = true).
func mathTruthy(t *tensor.Tensor) bool {
	if t.Len() == 0 {
		return false
	}
	if t.DType == tensor.Bool {
		return t.Bool[0]
	}
	return t.Float64At(0) != 0
}
