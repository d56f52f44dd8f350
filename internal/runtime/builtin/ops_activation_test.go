package builtin

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func mathAttrF(name string, v float32) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrFloat, F: v}
}

func mathAttrI(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

func TestMathActivationsHand(t *testing.T) {
	nan := float32(math.NaN())
	x := mathF32([]int{2, 3}, -2, -0.5, 0, 0.5, 2, nan)
	cases := []struct {
		op    string
		opset int64
		attrs []*onnx.Attribute
		in    *tensor.Tensor
		want  *tensor.Tensor
	}{
		{"Relu", 13, nil, x, mathF32([]int{2, 3}, 0, 0, 0, 0.5, 2, nan)},
		{"Relu", 14, nil, tensor.FromInt64([]int{3}, []int64{-3, 0, 4}), tensor.FromInt64([]int{3}, []int64{0, 0, 4})},
		{"Relu", 14, nil, tensor.FromInt32([]int{2}, []int32{-3, 4}), tensor.FromInt32([]int{2}, []int32{0, 4})},
		{"Relu", 13, nil, tensor.FromFloat64([]int{2}, []float64{-1, 1}), tensor.FromFloat64([]int{2}, []float64{0, 1})},
		{"LeakyRelu", 13, nil, x, mathF32([]int{2, 3}, -0.02, -0.005, 0, 0.5, 2, nan)},
		{"LeakyRelu", 13, []*onnx.Attribute{mathAttrF("alpha", 0.2)}, x, mathF32([]int{2, 3}, -0.4, -0.1, 0, 0.5, 2, nan)},
		{"Sigmoid", 13, nil, mathF32([]int{5}, 0, 2, -2, -1000, 1000), mathF32([]int{5}, 0.5, 0.8807970779778823, 0.11920292202211755, 0, 1)},
		{"Sigmoid", 13, nil, tensor.FromFloat64([]int{1}, []float64{1}), tensor.FromFloat64([]int{1}, []float64{0.7310585786300049})},
		{"Tanh", 13, nil, mathF32([]int{4}, 0, 1, -1, 50), mathF32([]int{4}, 0, 0.7615941559557649, -0.7615941559557649, 1)},
		{"Identity", 13, nil, tensor.FromBool([]int{2}, []bool{true, false}), tensor.FromBool([]int{2}, []bool{true, false})},
	}
	for _, c := range cases {
		out, err := mathRun(t, mathNode(c.op, c.opset, 1, 1, c.attrs), c.in)
		if err != nil {
			t.Fatalf("%s %v: %v", c.op, c.in.DType, err)
		}
		mathExpect(t, c.op, out[0], c.want, 1e-6)
	}
	// Integer Relu arrived in opset 14.
	if _, err := mathRun(t, mathNode("Relu", 13, 1, 1, nil), tensor.FromInt32([]int{1}, []int32{1})); err == nil {
		t.Error("Relu INT32 at opset 13 accepted")
	}
	for _, op := range []string{"Sigmoid", "Tanh", "LeakyRelu", "Softmax"} {
		_, err := mathRun(t, mathNode(op, 13, 1, 1, nil), tensor.FromInt64([]int{1}, []int64{1}))
		if err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s on INT64: %v", op, err)
		}
	}
}

// mathSoftmaxRef is the textbook formula along axis, in float64.
func mathSoftmaxRef(x []float64, shape []int, axis int) []float64 {
	outer := tensor.NumElements(shape[:axis])
	size, inner := shape[axis], tensor.NumElements(shape[axis+1:])
	y := make([]float64, len(x))
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			mx := math.Inf(-1)
			for s := 0; s < size; s++ {
				mx = math.Max(mx, x[(o*size+s)*inner+i])
			}
			var sum float64
			for s := 0; s < size; s++ {
				sum += math.Exp(x[(o*size+s)*inner+i] - mx)
			}
			for s := 0; s < size; s++ {
				j := (o*size+s)*inner + i
				y[j] = math.Exp(x[j]-mx) / sum
			}
		}
	}
	return y
}

func TestMathSoftmax(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	shape := []int{2, 3, 4}
	x := make([]float64, 24)
	for i := range x {
		x[i] = r.Float64()*6 - 3
	}
	x[5] = 1000 // stability: exp(1000) overflows without subtracting the max
	x32 := make([]float32, len(x))
	for i, v := range x {
		x32[i] = float32(v)
	}
	for _, axis := range []int64{-1, 0, 1, 2, -3} {
		ax := int(axis)
		if ax < 0 {
			ax += 3
		}
		want := tensor.FromFloat64(shape, mathSoftmaxRef(x, shape, ax))
		var attrs []*onnx.Attribute
		if axis != -1 {
			attrs = []*onnx.Attribute{mathAttrI("axis", axis)}
		}
		out, err := mathRun(t, mathNode("Softmax", 13, 1, 1, attrs), tensor.FromFloat64(shape, x))
		if err != nil {
			t.Fatal(err)
		}
		mathExpect(t, "softmax f64", out[0], want, 1e-12)
		out, err = mathRun(t, mathNode("Softmax", 13, 1, 1, attrs), tensor.FromFloat32(shape, x32))
		if err != nil {
			t.Fatal(err)
		}
		w32 := tensor.New(tensor.Float32, shape)
		for i, v := range want.F64 {
			w32.F32[i] = float32(v)
		}
		mathExpect(t, "softmax f32", out[0], w32, 1e-5)
	}
	if _, err := mathRun(t, mathNode("Softmax", 13, 1, 1, []*onnx.Attribute{mathAttrI("axis", 3)}), tensor.FromFloat64(shape, x)); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("axis 3 of rank 3: %v", err)
	}
	// Empty input: no work, no error.
	if _, err := mathRun(t, mathNode("Softmax", 13, 1, 1, nil), mathF32([]int{0, 3})); err != nil {
		t.Error(err)
	}
}

func TestMathClip(t *testing.T) {
	nan := float32(math.NaN())
	x := mathF32([]int{5}, -2, -0.5, 0.25, 3, nan)
	s := func(v float32) *tensor.Tensor { return mathF32(nil, v) }
	cases := []struct {
		name   string
		lo, hi *tensor.Tensor
		nIn    int
		want   *tensor.Tensor
	}{
		{"both", s(-1), s(1), 3, mathF32([]int{5}, -1, -0.5, 0.25, 1, nan)},
		{"min only", s(0), nil, 2, mathF32([]int{5}, 0, 0, 0.25, 3, nan)},
		{"max only", nil, s(0.5), 3, mathF32([]int{5}, -2, -0.5, 0.25, 0.5, nan)},
		{"none", nil, nil, 1, mathF32([]int{5}, -2, -0.5, 0.25, 3, nan)},
		{"crossed", s(1), s(0), 3, mathF32([]int{5}, 0, 0, 0, 0, nan)},
	}
	for _, c := range cases {
		for _, constant := range []bool{false, true} {
			n := mathNode("Clip", 13, c.nIn, 1, nil)
			if c.nIn > 1 && c.lo == nil {
				n.node.Inputs[1] = ""
			}
			in := []*tensor.Tensor{x, c.lo, c.hi}[:c.nIn]
			if constant {
				copy(n.consts[1:], in[1:])
			}
			out, err := mathRun(t, n, in...)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			mathExpect(t, "clip "+c.name, out[0], c.want, 0)
		}
	}
	xi := tensor.FromInt64([]int{4}, []int64{-10, -1, 5, 100})
	out, err := mathRun(t, mathNode("Clip", 13, 3, 1, nil), xi, tensor.FromInt64(nil, []int64{-2}), tensor.FromInt64(nil, []int64{10}))
	if err != nil {
		t.Fatal(err)
	}
	mathExpect(t, "clip int64", out[0], tensor.FromInt64([]int{4}, []int64{-2, -1, 5, 10}), 0)
	out, err = mathRun(t, mathNode("Clip", 13, 3, 1, nil), tensor.FromInt32([]int{2}, []int32{-7, 7}), nil, tensor.FromInt32(nil, []int32{3}))
	if err != nil {
		t.Fatal(err)
	}
	mathExpect(t, "clip int32", out[0], tensor.FromInt32([]int{2}, []int32{-7, 3}), 0)

	if _, err := mathRun(t, mathNode("Clip", 13, 2, 1, nil), x, tensor.FromFloat64(nil, []float64{0})); err == nil {
		t.Error("bound of another datatype accepted")
	}
	if _, err := mathRun(t, mathNode("Clip", 13, 2, 1, nil), x, mathF32([]int{2}, 0, 1)); err == nil {
		t.Error("non-scalar bound accepted")
	}
	if _, err := registry["Clip"](mathNode("Clip", 13, 2, 1, nil, nil, mathF32([]int{2}, 0, 1))); err == nil {
		t.Error("non-scalar constant bound accepted at load")
	}
}

func TestMathIdentityDropout(t *testing.T) {
	x := mathF32([]int{2, 2}, 1, 2, 3, 4)
	out, err := mathRun(t, mathNode("Identity", 13, 1, 1, nil), x)
	if err != nil || out[0] != x {
		t.Fatalf("Identity: %v %v", out, err)
	}
	ratio := mathF32(nil, 0.3)
	// Plain inference Dropout: the input itself, no mask.
	out, err = mathRun(t, mathNode("Dropout", 13, 2, 1, nil, nil, ratio), x, ratio)
	if err != nil || len(out) != 1 || out[0] != x {
		t.Fatalf("Dropout: %v %v", out, err)
	}
	// Mask requested: all true, same shape.
	off := tensor.FromBool(nil, []bool{false})
	out, err = mathRun(t, mathNode("Dropout", 13, 3, 2, nil), x, ratio, off)
	if err != nil || len(out) != 2 || out[0] != x {
		t.Fatalf("Dropout with mask: %v %v", out, err)
	}
	mathExpect(t, "mask", out[1], tensor.FromBool([]int{2, 2}, []bool{true, true, true, true}), 0)
	// training_mode: constant true fails at load; a run-time true fails
	// the request.
	on := tensor.FromBool(nil, []bool{true})
	if _, err := registry["Dropout"](mathNode("Dropout", 13, 3, 1, nil, nil, nil, on)); err == nil || !strings.Contains(err.Error(), "training_mode") {
		t.Errorf("constant training_mode=true: %v", err)
	}
	if _, err := mathRun(t, mathNode("Dropout", 13, 3, 1, nil), x, ratio, on); err == nil || !strings.Contains(err.Error(), "training_mode") {
		t.Errorf("run-time training_mode=true: %v", err)
	}
	if _, err := mathRun(t, mathNode("Dropout", 13, 3, 1, nil, nil, nil, off), x, nil, off); err != nil {
		t.Errorf("training_mode=false: %v", err)
	}
}

func BenchmarkMathSoftmax(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := mathRandTensor(r, tensor.Float32, []int{64, 1000})
	k, _ := mathSoftmaxFactory(mathNode("Softmax", 13, 1, 1, nil))
	for b.Loop() {
		if _, err := k([]*tensor.Tensor{x}); err != nil {
			b.Fatal(err)
		}
	}
}
