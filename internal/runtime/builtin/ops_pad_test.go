package builtin

import (
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func cnnI64(v ...int64) *tensor.Tensor { return tensor.FromInt64([]int{len(v)}, v) }

func TestPad(t *testing.T) {
	x22 := tensor.FromFloat32([]int{2, 2}, []float32{1, 2, 3, 4})
	x23 := tensor.FromFloat32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	x4 := tensor.FromFloat32([]int{4}, []float32{1, 2, 3, 4})
	nine := tensor.FromFloat32(nil, []float32{9})
	cases := []struct {
		name  string
		opset int64
		mode  string
		in    []*tensor.Tensor // data, pads, constant_value, axes
		want  *tensor.Tensor
	}{
		{"constant", 13, "constant", []*tensor.Tensor{x22, cnnI64(1, 0, 0, 1), nine},
			tensor.FromFloat32([]int{3, 3}, []float32{9, 9, 9, 1, 2, 9, 3, 4, 9})},
		{"constant_default", 13, "", []*tensor.Tensor{x22, cnnI64(0, 1, 1, 0)},
			tensor.FromFloat32([]int{3, 3}, []float32{0, 1, 2, 0, 3, 4, 0, 0, 0})},
		{"reflect", 13, "reflect", []*tensor.Tensor{x4, cnnI64(2, 2)},
			tensor.FromFloat32([]int{8}, []float32{3, 2, 1, 2, 3, 4, 3, 2})},
		{"edge", 13, "edge", []*tensor.Tensor{x4, cnnI64(2, 2)},
			tensor.FromFloat32([]int{8}, []float32{1, 1, 1, 2, 3, 4, 4, 4})},
		{"edge_2d", 13, "edge", []*tensor.Tensor{x22, cnnI64(1, 1, 1, 1)},
			tensor.FromFloat32([]int{4, 4}, []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4})},
		{"reflect_2d", 13, "reflect", []*tensor.Tensor{x23, cnnI64(1, 0, 0, 2)},
			tensor.FromFloat32([]int{3, 5}, []float32{4, 5, 6, 5, 4, 1, 2, 3, 2, 1, 4, 5, 6, 5, 4})},
		{"wrap", 19, "wrap", []*tensor.Tensor{x4, cnnI64(2, 3)},
			tensor.FromFloat32([]int{9}, []float32{3, 4, 1, 2, 3, 4, 1, 2, 3})},
		{"crop", 13, "constant", []*tensor.Tensor{x23, cnnI64(0, -1, 0, 1)},
			tensor.FromFloat32([]int{2, 3}, []float32{2, 3, 0, 5, 6, 0})},
		{"crop_reflect", 13, "reflect", []*tensor.Tensor{x4, cnnI64(-1, 2)},
			tensor.FromFloat32([]int{5}, []float32{2, 3, 4, 3, 2})},
		{"crop_all_rows", 13, "constant", []*tensor.Tensor{x23, cnnI64(-1, 0, -1, 0)},
			tensor.FromFloat32([]int{0, 3}, []float32{})},
		{"axes", 18, "constant", []*tensor.Tensor{x23, cnnI64(1, 1), nil, cnnI64(-1)},
			tensor.FromFloat32([]int{2, 5}, []float32{0, 1, 2, 3, 0, 0, 4, 5, 6, 0})},
		{"axes_int32", 18, "edge", []*tensor.Tensor{x23, cnnI64(1, 0), nil, tensor.FromInt32([]int{1}, []int32{0})},
			tensor.FromFloat32([]int{3, 3}, []float32{1, 2, 3, 1, 2, 3, 4, 5, 6})},
		{"rank3_middle", 13, "constant", []*tensor.Tensor{tensor.FromFloat32([]int{2, 1, 2}, []float32{1, 2, 3, 4}), cnnI64(0, 1, 0, 0, 0, 1)},
			tensor.FromFloat32([]int{2, 2, 3}, []float32{0, 0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0})},
		{"scalar", 13, "constant", []*tensor.Tensor{tensor.FromFloat32(nil, []float32{7}), tensor.FromInt64([]int{0}, nil)},
			tensor.FromFloat32(nil, []float32{7})},
		{"int64", 13, "constant", []*tensor.Tensor{tensor.FromInt64([]int{2}, []int64{5, 6}), cnnI64(1, 1), tensor.FromInt64(nil, []int64{-1})},
			tensor.FromInt64([]int{4}, []int64{-1, 5, 6, -1})},
		{"int32_reflect", 13, "reflect", []*tensor.Tensor{tensor.FromInt32([]int{3}, []int32{5, 6, 7}), cnnI64(1, 1)},
			tensor.FromInt32([]int{5}, []int32{6, 5, 6, 7, 6})},
		{"float64", 13, "constant", []*tensor.Tensor{tensor.FromFloat64([]int{1}, []float64{2.5}), cnnI64(1, 0), tensor.FromFloat64([]int{1}, []float64{-1})},
			tensor.FromFloat64([]int{2}, []float64{-1, 2.5})},
		{"bool", 13, "constant", []*tensor.Tensor{tensor.FromBool([]int{2}, []bool{false, false}), cnnI64(0, 1), tensor.FromBool(nil, []bool{true})},
			tensor.FromBool([]int{3}, []bool{false, false, true})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"x", "pads", "", ""}
			if len(tc.in) > 2 && tc.in[2] != nil {
				names[2] = "value"
			}
			if len(tc.in) > 3 {
				names[3] = "axes"
			}
			names = names[:len(tc.in)]
			var attrs []*onnx.Attribute
			if tc.mode != "" {
				attrs = append(attrs, cnnAStr("mode", tc.mode))
			}
			k, err := newPad(cnnNode("Pad", tc.opset, names, []string{"y"}, attrs, nil, tc.in[1]))
			if err != nil {
				t.Fatal(err)
			}
			y := cnnRun(t, k, tc.in)[0]
			if !cnnSame(y, tc.want) {
				t.Fatalf("got %+v, want %+v", y, tc.want)
			}
		})
	}
}

func TestPadErrors(t *testing.T) {
	load := []struct {
		name   string
		opset  int64
		attrs  []*onnx.Attribute
		inputs []string
		pads   *tensor.Tensor
		want   string
	}{
		{"mode", 13, []*onnx.Attribute{cnnAStr("mode", "mirror")}, []string{"x", "pads"}, nil, "mirror"},
		{"wrap_opset", 18, []*onnx.Attribute{cnnAStr("mode", "wrap")}, []string{"x", "pads"}, nil, "opset 19"},
		{"axes_opset", 17, nil, []string{"x", "pads", "", "axes"}, nil, "opset 18"},
		{"no_pads", 13, nil, []string{"x"}, nil, "pads"},
		{"pads_dtype", 13, nil, []string{"x", "pads"}, tensor.FromInt32([]int{2}, []int32{1, 1}), "INT64"},
	}
	for _, tc := range load {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newPad(cnnNode("Pad", tc.opset, tc.inputs, []string{"y"}, tc.attrs, nil, tc.pads))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	x := tensor.FromFloat32([]int{2, 2}, []float32{1, 2, 3, 4})
	run := []struct {
		name string
		mode string
		in   []*tensor.Tensor
		want string
	}{
		{"pads_len", "constant", []*tensor.Tensor{x, cnnI64(1, 1)}, "pads has 2 values"},
		{"over_crop", "constant", []*tensor.Tensor{x, cnnI64(-2, 0, -1, 0)}, "crop more"},
		{"reflect_empty", "reflect", []*tensor.Tensor{x, cnnI64(-2, 0, 1, 0)}, "empty"},
		{"value_dtype", "constant", []*tensor.Tensor{x, cnnI64(1, 1, 1, 1), tensor.FromInt64(nil, []int64{1})}, "constant_value"},
		{"axis_range", "constant", []*tensor.Tensor{x, cnnI64(1, 1), nil, cnnI64(2)}, "out of range"},
		{"axis_repeat", "constant", []*tensor.Tensor{x, cnnI64(1, 1, 1, 1), nil, cnnI64(0, -2)}, "repeated"},
		{"pads_shape", "constant", []*tensor.Tensor{x, tensor.FromInt64([]int{2, 2}, []int64{1, 1, 1, 1})}, "1-D INT64"},
	}
	for _, tc := range run {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"x", "pads", "value", "axes"}[:len(tc.in)]
			k, err := newPad(cnnNode("Pad", 19, names, []string{"y"}, []*onnx.Attribute{cnnAStr("mode", tc.mode)}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = k(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
