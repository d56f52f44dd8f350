package builtin

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// mathNode builds the nodeInfo a factory sees: inputs named in0, in1, ...
// ("" where in[i] is absent), consts[i] the load-time value of input i.
func mathNode(op string, opset int64, nIn, nOut int, attrs []*onnx.Attribute, consts ...*tensor.Tensor) *nodeInfo {
	node := &onnx.Node{OpType: op, Attrs: attrs}
	for i := 0; i < nIn; i++ {
		node.Inputs = append(node.Inputs, fmt.Sprintf("in%d", i))
	}
	for i := 0; i < nOut; i++ {
		node.Outputs = append(node.Outputs, fmt.Sprintf("out%d", i))
	}
	n := &nodeInfo{node: node, opset: opset, attrs: map[string]*onnx.Attribute{}, consts: make([]*tensor.Tensor, nIn)}
	for _, a := range attrs {
		n.attrs[a.Name] = a
	}
	copy(n.consts, consts)
	return n
}

// mathRun builds the kernel and runs it, failing the test if any input
// changed. A load error is returned as is.
func mathRun(t *testing.T, n *nodeInfo, in ...*tensor.Tensor) ([]*tensor.Tensor, error) {
	t.Helper()
	k, err := registry[n.node.OpType](n)
	if err != nil {
		return nil, err
	}
	// A consumed constant is passed as nil, as the compiled program does:
	// the kernel must not read it.
	in = slices.Clone(in)
	for i := range in {
		if n.isConsumed(i) {
			in[i] = nil
		}
	}
	before := make([]*tensor.Tensor, len(in))
	for i, x := range in {
		if x != nil {
			before[i] = x.Clone()
		}
	}
	out, err := k(in)
	for i, x := range in {
		if x != nil && !mathSameBits(x, before[i]) {
			t.Fatalf("%s modified input %d", n.node.OpType, i)
		}
	}
	return out, err
}

// mathSameBits compares tensors exactly, NaN payloads included.
func mathSameBits(a, b *tensor.Tensor) bool {
	if a.DType != b.DType || tensor.ShapeString(a.Shape) != tensor.ShapeString(b.Shape) || a.Len() != b.Len() {
		return false
	}
	for i := 0; i < a.Len(); i++ {
		if math.Float64bits(a.Float64At(i)) != math.Float64bits(b.Float64At(i)) {
			return false
		}
	}
	return true
}

// mathExpect checks shape, datatype and values (relative tolerance tol,
// NaN equal to NaN).
func mathExpect(t *testing.T, what string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got.DType != want.DType || tensor.ShapeString(got.Shape) != tensor.ShapeString(want.Shape) || got.Len() != want.Len() {
		t.Fatalf("%s: got %v%v (%d values), want %v%v", what, got.DType, got.Shape, got.Len(), want.DType, want.Shape)
	}
	for i := 0; i < want.Len(); i++ {
		g, w := got.Float64At(i), want.Float64At(i)
		if g == w || (math.IsNaN(w) && math.IsNaN(g)) {
			continue
		}
		if !(math.Abs(g-w) <= tol*math.Max(1, math.Abs(w))) {
			t.Fatalf("%s: [%d] = %v, want %v", what, i, g, w)
		}
	}
}

func mathF32(shape []int, v ...float32) *tensor.Tensor { return tensor.FromFloat32(shape, v) }

func TestMathBinaryHand(t *testing.T) {
	cases := []struct {
		op   string
		a, b *tensor.Tensor
		want *tensor.Tensor
	}{
		{"Add", mathF32([]int{2, 2}, 1, 2, 3, 4), mathF32([]int{2, 2}, 10, 20, 30, 40), mathF32([]int{2, 2}, 11, 22, 33, 44)},
		{"Sub", mathF32([]int{3}, 1, 2, 3), mathF32(nil, 1), mathF32([]int{3}, 0, 1, 2)},
		{"Sub", mathF32(nil, 1), mathF32([]int{3}, 1, 2, 3), mathF32([]int{3}, 0, -1, -2)},
		{"Mul", mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), mathF32([]int{3}, 1, 10, 100), mathF32([]int{2, 3}, 1, 20, 300, 4, 50, 600)},
		{"Div", mathF32([]int{2, 1}, 1, 2), mathF32([]int{1, 3}, 1, 2, 4), mathF32([]int{2, 3}, 1, 0.5, 0.25, 2, 1, 0.5)},
		{"Div", mathF32([]int{2}, 1, -1), mathF32([]int{2}, 0, 0), mathF32([]int{2}, float32(math.Inf(1)), float32(math.Inf(-1)))},
		{"Add", mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), mathF32([]int{1, 1, 1}, 1), mathF32([]int{1, 2, 3}, 2, 3, 4, 5, 6, 7)},
		{"Add", mathF32([]int{0, 3}), mathF32([]int{3}, 1, 2, 3), mathF32([]int{0, 3})},
		{"Mul", tensor.FromFloat64([]int{2}, []float64{1.5, 2}), tensor.FromFloat64(nil, []float64{2}), tensor.FromFloat64([]int{2}, []float64{3, 4})},
		// C-style truncation toward zero.
		{"Div", tensor.FromInt32([]int{4}, []int32{7, -7, 7, -7}), tensor.FromInt32([]int{4}, []int32{2, 2, -2, -2}), tensor.FromInt32([]int{4}, []int32{3, -3, -3, 3})},
		{"Div", tensor.FromInt64([]int{2, 2}, []int64{9, 8, -9, 1}), tensor.FromInt64([]int{2}, []int64{4, 3}), tensor.FromInt64([]int{2, 2}, []int64{2, 2, -2, 0})},
		{"Sub", tensor.FromInt64([]int{2}, []int64{5, 6}), tensor.FromInt64(nil, []int64{7}), tensor.FromInt64([]int{2}, []int64{-2, -1})},
		{"Div", tensor.FromInt64([]int{1}, []int64{math.MinInt64}), tensor.FromInt64([]int{1}, []int64{-1}), tensor.FromInt64([]int{1}, []int64{math.MinInt64})},
	}
	for i, c := range cases {
		out, err := mathRun(t, mathNode(c.op, 13, 2, 1, nil), c.a, c.b)
		if err != nil {
			t.Fatalf("case %d %s: %v", i, c.op, err)
		}
		mathExpect(t, fmt.Sprintf("case %d %s", i, c.op), out[0], c.want, 1e-6)
	}
}

func TestMathBinaryErrors(t *testing.T) {
	cases := []struct {
		op   string
		a, b *tensor.Tensor
		want string
	}{
		{"Div", tensor.FromInt32([]int{2}, []int32{1, 2}), tensor.FromInt32([]int{2}, []int32{1, 0}), "division by zero"},
		{"Div", tensor.FromInt64([]int{2}, []int64{1, 2}), tensor.FromInt64(nil, []int64{0}), "division by zero"},
		{"Add", mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), mathF32([]int{2}, 1, 2), "cannot be broadcast"},
		{"Mul", mathF32([]int{1}, 1), tensor.FromFloat64([]int{1}, []float64{1}), "differ"},
		{"Add", tensor.FromBool([]int{1}, []bool{true}), tensor.FromBool([]int{1}, []bool{true}), "not supported"},
	}
	for _, c := range cases {
		_, err := mathRun(t, mathNode(c.op, 13, 2, 1, nil), c.a, c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v %v: err %v, want %q", c.op, c.a.Shape, c.b.Shape, err, c.want)
		}
	}
	// Empty output: nothing is divided, so a zero divisor is harmless.
	if _, err := mathRun(t, mathNode("Div", 13, 2, 1, nil), tensor.FromInt32([]int{0}, nil), tensor.FromInt32([]int{1}, []int32{0})); err != nil {
		t.Errorf("empty Div: %v", err)
	}
	// A constant operand of an unsupported type fails at load.
	if _, err := registry["Add"](mathNode("Add", 13, 2, 1, nil, nil, tensor.FromBool(nil, []bool{true}))); err == nil {
		t.Error("BOOL constant accepted at load")
	}
}

// TestMathBinaryRandom compares every op and type against per-element
// index arithmetic over many broadcast shape pairs.
func TestMathBinaryRandom(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	pairs := [][2][]int{
		{{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 1, 4}, {3, 1}},
		{{1, 3, 1, 5}, {2, 1, 4, 1}}, {{5}, {}}, {{}, {5}}, {{3, 1}, {1, 1}}, {{2, 3, 4, 5}, {3, 1, 1}},
		{{1, 1}, {6, 7}}, {{4, 1, 3}, {1, 5, 1}}, {{0, 3}, {1, 3}},
	}
	for _, p := range pairs {
		out, err := mathBroadcastShape(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
			for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32, tensor.Int64} {
				a, b := mathRandTensor(r, dt, p[0]), mathRandTensor(r, dt, p[1])
				want := tensor.New(dt, out)
				for i := 0; i < want.Len(); i++ {
					idx := mathUnravel(i, out)
					x, y := a.Float64At(mathRavelBroadcast(idx, p[0])), b.Float64At(mathRavelBroadcast(idx, p[1]))
					mathSetFrom(want, i, mathRef(op, dt, x, y))
				}
				got, err := mathRun(t, mathNode(op, 13, 2, 1, nil), a, b)
				if err != nil {
					t.Fatalf("%s %v %v %v: %v", op, dt, p[0], p[1], err)
				}
				mathExpect(t, fmt.Sprintf("%s %v %v %v", op, dt, p[0], p[1]), got[0], want, 1e-6)
			}
		}
	}
}

func mathRef(op string, dt tensor.DType, x, y float64) float64 {
	switch op {
	case "Add":
		return x + y
	case "Sub":
		return x - y
	case "Mul":
		return x * y
	}
	if dt == tensor.Int32 || dt == tensor.Int64 {
		return math.Trunc(x / y)
	}
	return x / y
}

// mathRandTensor has nonzero values (usable as divisors), integers in
// [-9, 9] for the integer types.
func mathRandTensor(r *rand.Rand, dt tensor.DType, shape []int) *tensor.Tensor {
	t := tensor.New(dt, shape)
	for i := 0; i < t.Len(); i++ {
		v := float64(r.Intn(9) + 1)
		if dt == tensor.Float32 || dt == tensor.Float64 {
			v = r.Float64()*4 + 0.25
		}
		if r.Intn(2) == 0 {
			v = -v
		}
		mathSetFrom(t, i, v)
	}
	return t
}

func mathSetFrom(t *tensor.Tensor, i int, v float64) {
	switch t.DType {
	case tensor.Float32:
		t.F32[i] = float32(v)
	case tensor.Float64:
		t.F64[i] = v
	case tensor.Int32:
		t.I32[i] = int32(v)
	case tensor.Int64:
		t.I64[i] = int64(v)
	}
}

func BenchmarkMathAdd(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := mathRandTensor(r, tensor.Float32, []int{8, 64, 28, 28})
	cases := map[string]*tensor.Tensor{
		"same":    mathRandTensor(r, tensor.Float32, []int{8, 64, 28, 28}),
		"scalar":  mathRandTensor(r, tensor.Float32, nil),
		"channel": mathRandTensor(r, tensor.Float32, []int{64, 1, 1}),
		"lastdim": mathRandTensor(r, tensor.Float32, []int{28}),
	}
	for name, y := range cases {
		k, _ := mathBinaryFactory("Add")(mathNode("Add", 13, 2, 1, nil))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(4 * x.Len()))
			for b.Loop() {
				if _, err := k([]*tensor.Tensor{x, y}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
