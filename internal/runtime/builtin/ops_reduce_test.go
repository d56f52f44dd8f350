package builtin

import (
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestArgMax(t *testing.T) {
	// [[1, 5, 5], [7, 2, 7]]
	x := shapeF32([]int{2, 3}, 1, 5, 5, 7, 2, 7)
	attrs := func(kv ...int64) []*onnx.Attribute {
		names := []string{"axis", "keepdims", "select_last_index"}
		var a []*onnx.Attribute
		for i, v := range kv {
			a = append(a, shapeAttrInt(names[i], v))
		}
		return a
	}
	i64 := func(shape []int, v ...int64) *tensor.Tensor { return tensor.FromInt64(shape, v) }
	shapeRunCases(t, "ArgMax", []shapeCase{
		{name: "default_axis0", in: []*tensor.Tensor{x}, want: i64([]int{1, 3}, 1, 0, 1)},
		{name: "axis1", in: []*tensor.Tensor{x}, attrs: attrs(1), want: i64([]int{2, 1}, 1, 0)},
		{name: "axis1_last", in: []*tensor.Tensor{x}, attrs: attrs(1, 1, 1), want: i64([]int{2, 1}, 2, 2)},
		{name: "neg_axis_nokeep", in: []*tensor.Tensor{x}, attrs: attrs(-1, 0), want: i64([]int{2}, 1, 0)},
		{name: "axis0_last_nokeep", in: []*tensor.Tensor{shapeF32([]int{2, 2}, 3, 1, 3, 0)}, attrs: attrs(0, 0, 1), want: i64([]int{2}, 1, 0)},
		{name: "3d_mid", in: []*tensor.Tensor{shapeSeq(2, 3, 2)}, attrs: attrs(1), want: i64([]int{2, 1, 2}, 2, 2, 2, 2)},
		{name: "float64", in: []*tensor.Tensor{tensor.FromFloat64([]int{3}, []float64{-1, -0.5, -2})}, want: i64([]int{1}, 1)},
		{name: "int32", in: []*tensor.Tensor{tensor.FromInt32([]int{3}, []int32{4, 9, 9})}, attrs: attrs(0, 0), want: i64([]int{}, 1)},
		{name: "int64", in: []*tensor.Tensor{shapeI64(-5, -3, -9)}, attrs: attrs(0, 0), want: i64([]int{}, 1)},
		{name: "empty_outer", in: []*tensor.Tensor{shapeSeq(0, 3)}, attrs: attrs(1), want: i64([]int{0, 1})},
		{name: "empty_axis", in: []*tensor.Tensor{shapeSeq(2, 0)}, attrs: attrs(1), wantErr: "size 0"},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 1)}, wantErr: "scalar"},
		{name: "bad_axis", in: []*tensor.Tensor{x}, attrs: attrs(2), wantErr: "out of range"},
		{name: "bool", in: []*tensor.Tensor{tensor.FromBool([]int{1}, []bool{true})}, wantErr: "BOOL"},
	})
}
