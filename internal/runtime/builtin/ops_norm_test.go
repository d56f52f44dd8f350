package builtin

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestBatchNorm(t *testing.T) {
	// a = scale/sqrt(var+eps), b = B - mean*a: channel 0 a=1 b=-0.5,
	// channel 1 a=1 b=-3.
	x := tensor.FromFloat32([]int{1, 2, 2}, []float32{1, 2, 3, 4})
	params := []*tensor.Tensor{
		tensor.FromFloat32([]int{2}, []float32{2, 1}),
		tensor.FromFloat32([]int{2}, []float32{0.5, -1}),
		tensor.FromFloat32([]int{2}, []float32{1, 2}),
		tensor.FromFloat32([]int{2}, []float32{3, 0}),
	}
	want := []float32{0.5, 1.5, 0, 1}
	ins := []string{"x", "s", "b", "m", "v"}
	attrs := []*onnx.Attribute{cnnAFloat("epsilon", 1)}
	in := append([]*tensor.Tensor{x}, params...)
	for _, constant := range []bool{true, false} {
		consts := []*tensor.Tensor{nil}
		if constant {
			consts = append(consts, params...)
		}
		k, err := newBatchNorm(cnnNode("BatchNormalization", 15, ins, []string{"y"}, attrs, consts...))
		if err != nil {
			t.Fatal(err)
		}
		y := cnnRun(t, k, in)[0]
		if !reflect.DeepEqual(y.Shape, x.Shape) {
			t.Fatalf("shape %v", y.Shape)
		}
		cnnClose(t, y.F32, want, 1e-6)
		// FP64 data with FP32 statistics (opset 15 allows mixed types).
		y64 := cnnRun(t, k, append([]*tensor.Tensor{cnnTo64(x)}, params...))[0]
		for i, v := range y64.F64 {
			if math.Abs(v-float64(want[i])) > 1e-12 {
				t.Fatalf("fp64 [%d] = %v, want %v", i, v, want[i])
			}
		}
		// Rank 2 input [N, C].
		y2 := cnnRun(t, k, append([]*tensor.Tensor{tensor.FromFloat32([]int{2, 2}, []float32{1, 3, 2, 4})}, params...))[0]
		cnnClose(t, y2.F32, []float32{0.5, 0, 1.5, 1}, 1e-6)
	}
}

func TestBatchNormDefaultEpsilon(t *testing.T) {
	one := tensor.FromFloat32([]int{1}, []float32{1})
	zero := tensor.FromFloat32([]int{1}, []float32{0})
	k, err := newBatchNorm(cnnNode("BatchNormalization", 13, []string{"x", "s", "b", "m", "v"}, []string{"y"}, nil, nil, one, zero, zero, one))
	if err != nil {
		t.Fatal(err)
	}
	y := cnnRun(t, k, []*tensor.Tensor{tensor.FromFloat32([]int{1, 1}, []float32{2}), one, zero, zero, one})[0]
	cnnClose(t, y.F32, []float32{float32(2 / math.Sqrt(1+1e-5))}, 1e-7)
}

func TestBatchNormErrors(t *testing.T) {
	p := tensor.FromFloat32([]int{2}, []float32{1, 1})
	ins := []string{"x", "s", "b", "m", "v"}
	cases := []struct {
		name    string
		attrs   []*onnx.Attribute
		inputs  []string
		outputs []string
		consts  []*tensor.Tensor
		want    string
	}{
		{"training", []*onnx.Attribute{cnnAInt("training_mode", 1)}, ins, []string{"y"}, nil, "training_mode"},
		{"training_outputs", nil, ins, []string{"y", "rm", "rv"}, nil, "training mode"},
		{"inputs", nil, ins[:3], []string{"y"}, nil, "5 inputs"},
		{"param_shape", nil, ins, []string{"y"}, []*tensor.Tensor{nil, p, p, p, tensor.FromFloat32([]int{3}, []float32{1, 1, 1})}, "input_var"},
		{"param_dtype", nil, ins, []string{"y"}, []*tensor.Tensor{nil, p, p, p, tensor.FromInt64([]int{2}, []int64{1, 1})}, "INT64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newBatchNorm(cnnNode("BatchNormalization", 15, tc.inputs, tc.outputs, tc.attrs, tc.consts...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	k, err := newBatchNorm(cnnNode("BatchNormalization", 15, ins, []string{"y"}, nil, nil, p, p, p, p))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*tensor.Tensor{
		tensor.New(tensor.Float32, []int{1, 3, 2}),
		tensor.New(tensor.Float32, []int{2}),
		tensor.New(tensor.Int32, []int{1, 2}),
	} {
		if _, err := k([]*tensor.Tensor{x, p, p, p, p}); err == nil {
			t.Errorf("input %v %v: no error", x.DType, x.Shape)
		}
	}
}
