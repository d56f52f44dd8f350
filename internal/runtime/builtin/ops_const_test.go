package builtin

import (
	"math"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestConstant(t *testing.T) {
	w := shapeF32([]int{2, 2}, 1, -2, 3.5, 0)
	shapeRunCases(t, "Constant", []shapeCase{
		{name: "tensor", attrs: []*onnx.Attribute{shapeAttrTensor("value", w)}, want: w},
		{name: "scalar_tensor", attrs: []*onnx.Attribute{shapeAttrTensor("value", tensor.FromInt64([]int{}, []int64{0}))}, want: tensor.FromInt64([]int{}, []int64{0})},
		{name: "bool_tensor", attrs: []*onnx.Attribute{shapeAttrTensor("value", tensor.FromBool([]int{2}, []bool{true, false}))}, want: tensor.FromBool([]int{2}, []bool{true, false})},
		{name: "value_float", attrs: []*onnx.Attribute{{Name: "value_float", Type: onnx.AttrFloat, F: 2.5}}, want: shapeF32([]int{}, 2.5)},
		{name: "value_floats", attrs: []*onnx.Attribute{{Name: "value_floats", Type: onnx.AttrFloats, Floats: []float32{0.5, -1.25}}}, want: shapeF32([]int{2}, 0.5, -1.25)},
		{name: "value_int", attrs: []*onnx.Attribute{shapeAttrInt("value_int", 7)}, want: tensor.FromInt64([]int{}, []int64{7})},
		{name: "value_ints", attrs: []*onnx.Attribute{shapeAttrInts("value_ints", 3, -1)}, want: shapeI64(3, -1)},
		{name: "value_ints_empty", attrs: []*onnx.Attribute{shapeAttrInts("value_ints")}, want: shapeI64()},
		{name: "string", attrs: []*onnx.Attribute{{Name: "value_string", Type: onnx.AttrString, S: []byte("a")}}, wantErr: "value_string"},
		{name: "strings", attrs: []*onnx.Attribute{{Name: "value_strings", Type: onnx.AttrStrings}}, wantErr: "value_strings"},
		{name: "sparse", attrs: []*onnx.Attribute{{Name: "sparse_value", Type: onnx.AttrUndefined}}, wantErr: "sparse_value"},
		{name: "float16", attrs: []*onnx.Attribute{{Name: "value", Type: onnx.AttrTensor,
			T: &onnx.TensorProto{Dims: []int64{1}, DataType: onnx.DataFloat16, Int32Data: []int32{0}}}}, wantErr: "FLOAT16"},
		{name: "none", wantErr: "exactly one"},
		{name: "two", attrs: []*onnx.Attribute{shapeAttrInt("value_int", 1), shapeAttrInts("value_ints", 1)}, wantErr: "exactly one"},
	})
}

// TestConstantNotAliased checks that a value_floats constant does not share
// the attribute's slice (the decoded model is not kept, but be safe).
func TestConstantNotAliased(t *testing.T) {
	a := &onnx.Attribute{Name: "value_floats", Type: onnx.AttrFloats, Floats: []float32{1, 2}}
	out, err := shapeRunOp(t, "Constant", 17, nil, a)
	if err != nil {
		t.Fatal(err)
	}
	a.Floats[0] = 9
	if out[0].F32[0] != 1 {
		t.Fatal("constant shares the attribute's storage")
	}
}

func TestConstantOfShape(t *testing.T) {
	val := func(v *tensor.Tensor) []*onnx.Attribute { return []*onnx.Attribute{shapeAttrTensor("value", v)} }
	shapeRunCases(t, "ConstantOfShape", []shapeCase{
		{name: "default", in: []*tensor.Tensor{shapeI64(2, 1)}, want: shapeF32([]int{2, 1}, 0, 0)},
		{name: "float", in: []*tensor.Tensor{shapeI64(2, 3)}, attrs: val(shapeF32([]int{1}, 1.5)), want: shapeF32([]int{2, 3}, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5)},
		{name: "int64", in: []*tensor.Tensor{shapeI64(3)}, attrs: val(shapeI64(-4)), want: shapeI64(-4, -4, -4)},
		{name: "int32", in: []*tensor.Tensor{shapeI64(2)}, attrs: val(tensor.FromInt32([]int{1}, []int32{6})), want: tensor.FromInt32([]int{2}, []int32{6, 6})},
		{name: "double", in: []*tensor.Tensor{shapeI64(1)}, attrs: val(tensor.FromFloat64([]int{1}, []float64{0.25})), want: tensor.FromFloat64([]int{1}, []float64{0.25})},
		{name: "bool", in: []*tensor.Tensor{shapeI64(2)}, attrs: val(tensor.FromBool([]int{1}, []bool{true})), want: tensor.FromBool([]int{2}, []bool{true, true})},
		{name: "scalar_out", in: []*tensor.Tensor{shapeI64()}, attrs: val(shapeF32([]int{1}, 3)), want: shapeF32([]int{}, 3)},
		{name: "zero_dim", in: []*tensor.Tensor{shapeI64(2, 0)}, attrs: val(shapeF32([]int{1}, 3)), want: shapeSeq(2, 0)},
		{name: "negative", in: []*tensor.Tensor{shapeI64(2, -1)}, wantErr: "negative"},
		{name: "huge", in: []*tensor.Tensor{shapeI64(1<<20, 1<<20)}, wantErr: "more than"},
		{name: "int32_shape", in: []*tensor.Tensor{tensor.FromInt32([]int{1}, []int32{2})}, wantErr: "INT64"},
		{name: "two_values", in: []*tensor.Tensor{shapeI64(2)}, attrs: val(shapeF32([]int{2}, 1, 2)), wantErr: "one-element"},
	})
}

func TestCast(t *testing.T) {
	to := func(d onnx.DataType) []*onnx.Attribute { return []*onnx.Attribute{shapeAttrInt("to", int64(d))} }
	floats := shapeF32([]int{2, 4}, 1.7, -2.3, 0.2, -0.9, 3.99, -4.01, 0, 7.25)
	bools := tensor.FromBool([]int{3}, []bool{true, false, true})
	nan := shapeF32([]int{2}, float32(math.NaN()), float32(math.Inf(-1)))
	shapeRunCases(t, "Cast", []shapeCase{
		{name: "f32_i64", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataInt64), want: tensor.FromInt64([]int{2, 4}, []int64{1, -2, 0, 0, 3, -4, 0, 7})},
		{name: "f32_i32", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataInt32), want: tensor.FromInt32([]int{2, 4}, []int32{1, -2, 0, 0, 3, -4, 0, 7})},
		{name: "f32_bool", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataBool), want: tensor.FromBool([]int{2, 4}, []bool{true, true, true, true, true, true, false, true})},
		{name: "f32_f64", in: []*tensor.Tensor{shapeF32([]int{2}, 0.5, -3)}, attrs: to(onnx.DataDouble), want: tensor.FromFloat64([]int{2}, []float64{0.5, -3})},
		{name: "f64_f32", in: []*tensor.Tensor{tensor.FromFloat64([]int{1}, []float64{0.1})}, attrs: to(onnx.DataFloat), want: shapeF32([]int{1}, 0.1)},
		{name: "i64_f32", in: []*tensor.Tensor{shapeI64(3, -7, 123456)}, attrs: to(onnx.DataFloat), want: shapeF32([]int{3}, 3, -7, 123456)},
		{name: "i32_i64", in: []*tensor.Tensor{tensor.FromInt32([]int{2}, []int32{math.MaxInt32, -6})}, attrs: to(onnx.DataInt64), want: shapeI64(math.MaxInt32, -6)},
		{name: "i64_i32", in: []*tensor.Tensor{shapeI64(5, -1000)}, attrs: to(onnx.DataInt32), want: tensor.FromInt32([]int{2}, []int32{5, -1000})},
		{name: "i64_bool", in: []*tensor.Tensor{shapeI64(0, -3)}, attrs: to(onnx.DataBool), want: tensor.FromBool([]int{2}, []bool{false, true})},
		{name: "bool_f32", in: []*tensor.Tensor{bools}, attrs: to(onnx.DataFloat), want: shapeF32([]int{3}, 1, 0, 1)},
		{name: "bool_i64", in: []*tensor.Tensor{bools}, attrs: to(onnx.DataInt64), want: shapeI64(1, 0, 1)},
		{name: "bool_bool", in: []*tensor.Tensor{bools}, attrs: to(onnx.DataBool), want: bools},
		{name: "same", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataFloat), want: floats},
		{name: "nan_bool", in: []*tensor.Tensor{nan}, attrs: to(onnx.DataBool), want: tensor.FromBool([]int{2}, []bool{true, true})},
		{name: "nan_f64", in: []*tensor.Tensor{nan}, attrs: to(onnx.DataDouble), want: tensor.FromFloat64([]int{2}, []float64{math.NaN(), math.Inf(-1)})},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, -1.5)}, attrs: to(onnx.DataInt64), want: tensor.FromInt64([]int{}, []int64{-1})},
		{name: "empty", in: []*tensor.Tensor{shapeSeq(0, 2)}, attrs: to(onnx.DataInt32), want: tensor.New(tensor.Int32, []int{0, 2})},
		{name: "float16", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataFloat16), wantErr: "FLOAT16"},
		{name: "string", in: []*tensor.Tensor{floats}, attrs: to(onnx.DataString), wantErr: "STRING"},
		{name: "unknown", in: []*tensor.Tensor{floats}, attrs: to(99), wantErr: "DATATYPE_99"},
		{name: "no_to", in: []*tensor.Tensor{floats}, wantErr: "to is required"},
		{name: "saturate_ignored", opset: 19, in: []*tensor.Tensor{shapeF32([]int{1}, 2.9)},
			attrs: []*onnx.Attribute{shapeAttrInt("to", int64(onnx.DataInt64)), shapeAttrInt("saturate", 0)}, want: shapeI64(2)},
	})
}
