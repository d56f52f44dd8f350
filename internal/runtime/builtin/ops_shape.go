package builtin

import (
	"fmt"
	"math"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Shape-manipulation operators. Most of them only relabel the shape, so they
// return a tensor sharing the input's data (never written, so sharing is
// safe); Concat moves data with copy() on contiguous runs. Transpose lives
// in ops_gather.go with Slice: both run on the same strided-copy plan.

func init() {
	register("Shape", buildShape)
	register("Flatten", buildFlatten)
	register("Reshape", buildReshape)
	register("Concat", buildConcat)
	register("Unsqueeze", buildUnsqueeze)
	register("Squeeze", buildSqueeze)
}

// shapeElem is every element type a tensor can hold.
type shapeElem interface {
	float32 | float64 | int32 | int64 | bool
}

// shapeData returns t's active slice as []T; nil when T is not t's type.
// One type switch per call lets data-movement code be written once,
// generically, and dispatched on the DType at its entry point.
func shapeData[T shapeElem](t *tensor.Tensor) []T {
	var s any
	switch t.DType {
	case tensor.Float32:
		s = t.F32
	case tensor.Float64:
		s = t.F64
	case tensor.Int32:
		s = t.I32
	case tensor.Int64:
		s = t.I64
	case tensor.Bool:
		s = t.Bool
	}
	d, _ := s.([]T)
	return d
}

// shapeNeedInputs fails at load time when a required input is missing.
func shapeNeedInputs(n *nodeInfo, k int) error {
	for i := 0; i < k; i++ {
		if !n.hasInput(i) {
			return n.errorf("needs %d inputs, input %d is missing", k, i)
		}
	}
	return nil
}

// shapeOptIn returns optional input i, or nil when it is absent.
func shapeOptIn(in []*tensor.Tensor, i int) *tensor.Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

// shapeNormAxis maps axis in [-r, r-1] to [0, r-1].
func shapeNormAxis(axis int64, r int) (int, error) {
	if axis < -int64(r) || axis >= int64(r) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += int64(r)
	}
	return int(axis), nil
}

// shapeInts reads an INT32 or INT64 tensor as int64 values.
func shapeInts(t *tensor.Tensor, what string) ([]int64, error) {
	switch t.DType {
	case tensor.Int64:
		return t.I64, nil
	case tensor.Int32:
		v := make([]int64, len(t.I32))
		for i, x := range t.I32 {
			v[i] = int64(x)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%s must be INT32 or INT64, got %v", what, t.DType)
}

// shapeProd multiplies dims; 1 for none.
func shapeProd(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// shapeStrides returns row-major element strides.
func shapeStrides(dims []int) []int {
	st := make([]int, len(dims))
	s := 1
	for i := len(dims) - 1; i >= 0; i-- {
		st[i] = s
		s *= dims[i]
	}
	return st
}

// shapeClampRange turns Shape's start/end into [s, e) within rank r.
func shapeClampRange(start, end int64, r int) (int, int) {
	clamp := func(v int64) int {
		if v < 0 {
			v += int64(r)
		}
		return int(min(max(v, 0), int64(r)))
	}
	s, e := clamp(start), clamp(end)
	return s, max(s, e)
}

func buildShape(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	if n.opset < 15 && (n.hasAttr("start") || n.hasAttr("end")) {
		return nil, n.errorf("attributes start/end need opset 15 or later (model uses %d)", n.opset)
	}
	start, end := n.attrInt("start", 0), n.attrInt("end", math.MaxInt64)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		dims := in[0].Shape
		s, e := shapeClampRange(start, end, len(dims))
		out := make([]int64, e-s)
		for i := range out {
			out[i] = int64(dims[s+i])
		}
		return []*tensor.Tensor{tensor.FromInt64([]int{len(out)}, out)}, nil
	}, nil
}

func buildFlatten(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	axis := n.attrInt("axis", 1)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		// Flatten accepts axis in [-r, r]: axis r gives [N, 1].
		if axis < -int64(r) || axis > int64(r) {
			return nil, fmt.Errorf("axis %d is out of range for rank %d", axis, r)
		}
		a := int(axis)
		if a < 0 {
			a += r
		}
		return []*tensor.Tensor{x.Reshaped([]int{shapeProd(x.Shape[:a]), shapeProd(x.Shape[a:])})}, nil
	}, nil
}

func buildReshape(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 2); err != nil {
		return nil, err
	}
	if n.opset < 14 && n.hasAttr("allowzero") {
		return nil, n.errorf("attribute allowzero needs opset 14 or later (model uses %d)", n.opset)
	}
	allowZero := n.attrInt("allowzero", 0) != 0
	if c := n.constInput(1); c != nil {
		// Catch a malformed constant shape at load time.
		if c.DType != tensor.Int64 {
			return nil, n.errorf("shape input must be INT64, got %v", c.DType)
		}
		if _, err := reshapeTarget(nil, c.I64, allowZero, -1); err != nil {
			return nil, n.errorf("%v", err)
		}
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x, s := in[0], in[1]
		if s.DType != tensor.Int64 {
			return nil, fmt.Errorf("shape input must be INT64, got %v", s.DType)
		}
		if len(s.Shape) != 1 {
			return nil, fmt.Errorf("shape input must be 1-D, got shape %v", s.Shape)
		}
		dims, err := reshapeTarget(x.Shape, s.I64, allowZero, x.Len())
		if err != nil {
			return nil, err
		}
		return []*tensor.Tensor{x.Reshaped(dims)}, nil
	}, nil
}

// reshapeTarget resolves Reshape's requested shape against the input dims.
// With total < 0 it only checks the request's form (load time).
func reshapeTarget(in []int, spec []int64, allowZero bool, total int) ([]int, error) {
	out := make([]int, len(spec))
	unknown, hasZero := -1, false
	known := int64(1)
	for i, v := range spec {
		switch {
		case v == -1:
			if unknown >= 0 {
				return nil, fmt.Errorf("requested shape %v has more than one -1", spec)
			}
			unknown = i
			continue
		case v < -1:
			return nil, fmt.Errorf("requested shape %v has invalid dimension %d", spec, v)
		case v == 0 && !allowZero:
			if total < 0 {
				continue
			}
			if i >= len(in) {
				return nil, fmt.Errorf("requested shape %v copies dimension %d with 0, but the input has shape %v", spec, i, in)
			}
			v = int64(in[i])
		case v == 0:
			hasZero = true
		}
		out[i] = int(v)
		// Saturate instead of overflowing: anything this big cannot match.
		if v != 0 && known > math.MaxInt64/v {
			known = math.MaxInt64
		} else {
			known *= v
		}
	}
	if hasZero && unknown >= 0 {
		return nil, fmt.Errorf("requested shape %v has both 0 and -1 with allowzero=1", spec)
	}
	if total < 0 {
		return out, nil
	}
	if unknown >= 0 {
		if known == 0 || int64(total)%known != 0 {
			return nil, fmt.Errorf("cannot reshape input of shape %v (%d elements) to %v", in, total, spec)
		}
		out[unknown] = int(int64(total) / known)
	} else if known != int64(total) {
		return nil, fmt.Errorf("cannot reshape input of shape %v (%d elements) to %v", in, total, spec)
	}
	return out, nil
}

func buildConcat(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, max(n.numInputs(), 1)); err != nil {
		return nil, err
	}
	if !n.hasAttr("axis") {
		return nil, n.errorf("attribute axis is required")
	}
	axis := n.attrInt("axis", 0)
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		first := in[0]
		r := len(first.Shape)
		if r == 0 {
			return nil, fmt.Errorf("cannot concatenate scalars")
		}
		a, err := shapeNormAxis(axis, r)
		if err != nil {
			return nil, err
		}
		outShape := append([]int(nil), first.Shape...)
		outShape[a] = 0
		for _, t := range in {
			if t.DType != first.DType {
				return nil, fmt.Errorf("inputs have different datatypes %v and %v", first.DType, t.DType)
			}
			if len(t.Shape) != r {
				return nil, fmt.Errorf("input shapes %v and %v have different ranks", first.Shape, t.Shape)
			}
			for i, d := range t.Shape {
				if i != a && d != first.Shape[i] {
					return nil, fmt.Errorf("input shapes %v and %v differ outside axis %d", first.Shape, t.Shape, a)
				}
			}
			outShape[a] += t.Shape[a]
		}
		if len(in) == 1 {
			return []*tensor.Tensor{first}, nil
		}
		out := tensor.New(first.DType, outShape)
		outer := shapeProd(outShape[:a])
		switch first.DType {
		case tensor.Float32:
			concatInto[float32](out, in, outer)
		case tensor.Float64:
			concatInto[float64](out, in, outer)
		case tensor.Int32:
			concatInto[int32](out, in, outer)
		case tensor.Int64:
			concatInto[int64](out, in, outer)
		case tensor.Bool:
			concatInto[bool](out, in, outer)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// concatInto copies, for each of the outer slabs, each input's contiguous
// block in turn.
func concatInto[T shapeElem](out *tensor.Tensor, in []*tensor.Tensor, outer int) {
	dst := shapeData[T](out)
	srcs := make([][]T, len(in))
	blocks := make([]int, len(in))
	for i, t := range in {
		srcs[i] = shapeData[T](t)
		if outer > 0 {
			blocks[i] = len(srcs[i]) / outer
		}
	}
	d := 0
	for o := 0; o < outer; o++ {
		for i, src := range srcs {
			b := blocks[i]
			d += copy(dst[d:d+b], src[o*b:o*b+b])
		}
	}
}

func buildUnsqueeze(n *nodeInfo) (kernel, error) {
	if n.hasAttr("axes") {
		return nil, n.errorf("axes is an input from opset 13 on, not an attribute")
	}
	if err := shapeNeedInputs(n, 2); err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		axes, err := shapeInts(in[1], "axes")
		if err != nil {
			return nil, err
		}
		r := len(x.Shape) + len(axes)
		isNew := make([]bool, r)
		for _, ax := range axes {
			a, err := shapeNormAxis(ax, r)
			if err != nil {
				return nil, err
			}
			if isNew[a] {
				return nil, fmt.Errorf("axes %v repeat axis %d", axes, a)
			}
			isNew[a] = true
		}
		dims := make([]int, r)
		j := 0
		for i := range dims {
			if isNew[i] {
				dims[i] = 1
			} else {
				dims[i] = x.Shape[j]
				j++
			}
		}
		return []*tensor.Tensor{x.Reshaped(dims)}, nil
	}, nil
}

func buildSqueeze(n *nodeInfo) (kernel, error) {
	if n.hasAttr("axes") {
		return nil, n.errorf("axes is an input from opset 13 on, not an attribute")
	}
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		drop := make([]bool, r)
		var axes []int64
		if t := shapeOptIn(in, 1); t != nil {
			var err error
			if axes, err = shapeInts(t, "axes"); err != nil {
				return nil, err
			}
		}
		// Like onnxruntime, an empty axes list squeezes every 1-dimension.
		if len(axes) == 0 {
			for i, d := range x.Shape {
				drop[i] = d == 1
			}
		}
		for _, ax := range axes {
			a, err := shapeNormAxis(ax, r)
			if err != nil {
				return nil, err
			}
			if x.Shape[a] != 1 {
				return nil, fmt.Errorf("cannot squeeze axis %d of shape %v: dimension is %d, not 1", a, x.Shape, x.Shape[a])
			}
			drop[a] = true
		}
		dims := make([]int, 0, r)
		for i, d := range x.Shape {
			if !drop[i] {
				dims = append(dims, d)
			}
		}
		return []*tensor.Tensor{x.Reshaped(dims)}, nil
	}, nil
}
