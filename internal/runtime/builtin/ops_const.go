package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Constant, ConstantOfShape and Cast. Constant has no inputs, so the loader
// folds it: its kernel runs once and the value becomes a graph constant.

func init() {
	register("Constant", buildConstant)
	register("ConstantOfShape", buildConstantOfShape)
	register("Cast", buildCast)
}

// constMaxElements bounds ConstantOfShape's output: the shape may come from
// a request, and a few bytes must not be able to ask for terabytes.
const constMaxElements = 1 << 31

func buildConstant(n *nodeInfo) (kernel, error) {
	var val *tensor.Tensor
	given := 0
	for _, a := range n.node.Attrs {
		given++
		switch a.Name {
		case "value":
			t, ok, err := n.attrTensor("value")
			if err != nil {
				return nil, n.errorf("attribute value: %v", err)
			}
			if !ok {
				return nil, n.errorf("attribute value holds no tensor")
			}
			val = t
		case "value_float":
			val = tensor.FromFloat32([]int{}, []float32{a.F})
		case "value_floats":
			val = tensor.FromFloat32([]int{len(a.Floats)}, append([]float32{}, a.Floats...))
		case "value_int":
			val = tensor.FromInt64([]int{}, []int64{a.I})
		case "value_ints":
			val = tensor.FromInt64([]int{len(a.Ints)}, append([]int64{}, a.Ints...))
		case "value_string", "value_strings", "sparse_value":
			return nil, n.errorf("attribute %s is not supported (only numeric and bool dense values)", a.Name)
		default:
			given-- // not a value attribute; ignore like other runtimes
		}
	}
	if given != 1 {
		return nil, n.errorf("needs exactly one value attribute, got %d", given)
	}
	return func([]*tensor.Tensor) ([]*tensor.Tensor, error) {
		return []*tensor.Tensor{val}, nil
	}, nil
}

func buildConstantOfShape(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	val := tensor.FromFloat32([]int{1}, []float32{0})
	if n.hasAttr("value") {
		t, ok, err := n.attrTensor("value")
		if err != nil {
			return nil, n.errorf("attribute value: %v", err)
		}
		if !ok || t.Len() != 1 {
			return nil, n.errorf("attribute value must be a one-element tensor")
		}
		val = t
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		s := in[0]
		if s.DType != tensor.Int64 || len(s.Shape) != 1 {
			return nil, fmt.Errorf("shape input must be a 1-D INT64 tensor, got %v of shape %v", s.DType, s.Shape)
		}
		dims := make([]int, len(s.I64))
		total := int64(1)
		for i, d := range s.I64 {
			if d < 0 {
				return nil, fmt.Errorf("shape %v has a negative dimension", s.I64)
			}
			if d > 0 && total > constMaxElements/d {
				return nil, fmt.Errorf("shape %v has more than %d elements", s.I64, constMaxElements)
			}
			total *= d
			dims[i] = int(d)
		}
		out := tensor.New(val.DType, dims)
		switch val.DType {
		case tensor.Float32:
			constFill(out.F32, val.F32[0])
		case tensor.Float64:
			constFill(out.F64, val.F64[0])
		case tensor.Int32:
			constFill(out.I32, val.I32[0])
		case tensor.Int64:
			constFill(out.I64, val.I64[0])
		case tensor.Bool:
			constFill(out.Bool, val.Bool[0])
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

// constFill sets every element to v; a fresh slice is already zero.
func constFill[T shapeElem](dst []T, v T) {
	var zero T
	if v == zero {
		return
	}
	for i := range dst {
		dst[i] = v
	}
}

func buildCast(n *nodeInfo) (kernel, error) {
	if err := shapeNeedInputs(n, 1); err != nil {
		return nil, err
	}
	if !n.hasAttr("to") {
		return nil, n.errorf("attribute to is required")
	}
	to := onnx.DataType(n.attrInt("to", 0))
	dt, err := onnx.DTypeOf(to)
	if err != nil {
		return nil, n.errorf("cast to %s is not supported (supported: FLOAT, DOUBLE, INT32, INT64, BOOL)", to.String())
	}
	return func(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		x := in[0]
		if x.DType == dt {
			return []*tensor.Tensor{x}, nil
		}
		out := tensor.New(dt, x.Shape)
		switch dt {
		case tensor.Float32:
			castTo(out.F32, x)
		case tensor.Float64:
			castTo(out.F64, x)
		case tensor.Int32:
			castTo(out.I32, x)
		case tensor.Int64:
			castTo(out.I64, x)
		case tensor.Bool:
			switch x.DType {
			case tensor.Float32:
				castToBool(out.Bool, x.F32)
			case tensor.Float64:
				castToBool(out.Bool, x.F64)
			case tensor.Int32:
				castToBool(out.Bool, x.I32)
			case tensor.Int64:
				castToBool(out.Bool, x.I64)
			}
		default:
			return nil, fmt.Errorf("cannot cast %v to %v", x.DType, dt)
		}
		return []*tensor.Tensor{out}, nil
	}, nil
}

type castNumber interface {
	float32 | float64 | int32 | int64
}

// castTo converts x's values into dst with Go conversion semantics: floats
// to integers truncate toward zero, as ONNX specifies.
func castTo[D castNumber](dst []D, x *tensor.Tensor) {
	switch x.DType {
	case tensor.Float32:
		castNum(dst, x.F32)
	case tensor.Float64:
		castNum(dst, x.F64)
	case tensor.Int32:
		castNum(dst, x.I32)
	case tensor.Int64:
		castNum(dst, x.I64)
	case tensor.Bool:
		for i, b := range x.Bool {
			if b {
				dst[i] = 1
			}
		}
	}
}

func castNum[D, S castNumber](dst []D, src []S) {
	for i, v := range src {
		dst[i] = D(v)
	}
}

func castToBool[S castNumber](dst []bool, src []S) {
	for i, v := range src {
		dst[i] = v != 0
	}
}
