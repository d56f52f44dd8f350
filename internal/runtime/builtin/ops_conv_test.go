package builtin

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Test helpers shared by the CNN family tests (conv, pool, norm, pad).

func cnnAInts(name string, v ...int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func cnnAInt(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

func cnnAStr(name, v string) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrString, S: []byte(v)}
}

func cnnAFloat(name string, v float32) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrFloat, F: v}
}

// cnnNode builds the nodeInfo a factory sees. consts[i] is the load-time
// value of input i (nil for run time); an input named "" is absent.
func cnnNode(op string, opset int64, inputs, outputs []string, attrs []*onnx.Attribute, consts ...*tensor.Tensor) *nodeInfo {
	n := &nodeInfo{
		node:  &onnx.Node{OpType: op, Inputs: inputs, Outputs: outputs, Attrs: attrs},
		opset: opset,
		attrs: map[string]*onnx.Attribute{},
	}
	for _, a := range attrs {
		n.attrs[a.Name] = a
	}
	n.consts = make([]*tensor.Tensor, len(inputs))
	copy(n.consts, consts)
	return n
}

// cnnRun runs k twice on in, failing if the inputs change or the runs
// disagree, and returns the first run's outputs.
func cnnRun(t *testing.T, k kernel, in []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	before := make([]*tensor.Tensor, len(in))
	for i, x := range in {
		if x != nil {
			before[i] = x.Clone()
		}
	}
	first, err := k(in)
	if err != nil {
		t.Fatalf("run 1: %v", err)
	}
	second, err := k(in)
	if err != nil {
		t.Fatalf("run 2: %v", err)
	}
	for i := range in {
		if !cnnSame(before[i], in[i]) {
			t.Fatalf("input %d was modified by the kernel", i)
		}
	}
	if len(first) != len(second) {
		t.Fatalf("second run gave %d outputs, first %d", len(second), len(first))
	}
	for i := range first {
		if !cnnSame(first[i], second[i]) {
			t.Fatalf("output %d of the second run differs from the first", i)
		}
	}
	return first
}

// cnnSame reports whether two tensors have the same datatype, shape and
// bit-identical values.
func cnnSame(a, b *tensor.Tensor) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || a.Len() != b.Len() {
		return false
	}
	for i := range a.Len() {
		if math.Float64bits(a.Float64At(i)) != math.Float64bits(b.Float64At(i)) {
			return false
		}
	}
	return true
}

func cnnRand(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func cnnClose(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// naiveConv is a direct 3-D convolution with explicit padding, the
// reference the fast kernel is compared against (lower ranks use unit axes).
func naiveConv(x, w, b []float32, nb, c int, in [3]int, m int, k [3]int, group int, s, d, pb, pe [3]int) ([]float32, [3]int) {
	var out [3]int
	for i := range 3 {
		out[i] = (in[i]+pb[i]+pe[i]-d[i]*(k[i]-1)-1)/s[i] + 1
	}
	cg, mg := c/group, m/group
	y := make([]float32, nb*m*out[0]*out[1]*out[2])
	yi := 0
	for n := range nb {
		for oc := range m {
			g := oc / mg
			for o0 := range out[0] {
				for o1 := range out[1] {
					for o2 := range out[2] {
						var sum float64
						if b != nil {
							sum = float64(b[oc])
						}
						for ic := range cg {
							for k0 := range k[0] {
								for k1 := range k[1] {
									for k2 := range k[2] {
										i0 := o0*s[0] - pb[0] + k0*d[0]
										i1 := o1*s[1] - pb[1] + k1*d[1]
										i2 := o2*s[2] - pb[2] + k2*d[2]
										if i0 < 0 || i1 < 0 || i2 < 0 || i0 >= in[0] || i1 >= in[1] || i2 >= in[2] {
											continue
										}
										xv := x[(((n*c+g*cg+ic)*in[0]+i0)*in[1]+i1)*in[2]+i2]
										wv := w[(((oc*cg+ic)*k[0]+k0)*k[1]+k1)*k[2]+k2]
										sum += float64(xv) * float64(wv)
									}
								}
							}
						}
						y[yi] = float32(sum)
						yi++
					}
				}
			}
		}
	}
	return y, out
}

func TestConvHandChecked(t *testing.T) {
	// 1x1x3x3 input 1..9, one 2x2 kernel of ones, bias 10.
	x := tensor.FromFloat32([]int{1, 1, 3, 3}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9})
	w := tensor.FromFloat32([]int{1, 1, 2, 2}, []float32{1, 1, 1, 1})
	b := tensor.FromFloat32([]int{1}, []float32{10})
	cases := []struct {
		name  string
		attrs []*onnx.Attribute
		shape []int
		want  []float32
	}{
		{"valid", nil, []int{1, 1, 2, 2}, []float32{22, 26, 34, 38}},
		{"pads", []*onnx.Attribute{cnnAInts("pads", 1, 1, 0, 0)}, []int{1, 1, 3, 3},
			[]float32{11, 13, 15, 15, 22, 26, 21, 34, 38}},
		{"stride2_pads_end", []*onnx.Attribute{cnnAInts("strides", 2, 2), cnnAInts("pads", 0, 0, 1, 1)}, []int{1, 1, 2, 2},
			[]float32{22, 19, 25, 19}},
		// SAME_UPPER on 3x3 with a 2x2 kernel: total pad 1, at the end.
		{"same_upper", []*onnx.Attribute{cnnAStr("auto_pad", "SAME_UPPER")}, []int{1, 1, 3, 3},
			[]float32{22, 26, 19, 34, 38, 25, 25, 27, 19}},
		// SAME_LOWER: the extra pad goes to the beginning.
		{"same_lower", []*onnx.Attribute{cnnAStr("auto_pad", "SAME_LOWER")}, []int{1, 1, 3, 3},
			[]float32{11, 13, 15, 15, 22, 26, 21, 34, 38}},
		{"dilation2", []*onnx.Attribute{cnnAInts("dilations", 2, 2)}, []int{1, 1, 1, 1}, []float32{30}},
		{"kernel_shape", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAStr("auto_pad", "VALID")}, []int{1, 1, 2, 2},
			[]float32{22, 26, 34, 38}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, constW := range []bool{true, false} {
				var consts []*tensor.Tensor
				if constW {
					consts = []*tensor.Tensor{nil, w, b}
				}
				k, err := newConv(cnnNode("Conv", 13, []string{"x", "w", "b"}, []string{"y"}, tc.attrs, consts...))
				if err != nil {
					t.Fatal(err)
				}
				y := cnnRun(t, k, []*tensor.Tensor{x, w, b})[0]
				if !reflect.DeepEqual(y.Shape, tc.shape) {
					t.Fatalf("shape %v, want %v", y.Shape, tc.shape)
				}
				cnnClose(t, y.F32, tc.want, 1e-6)
			}
		})
	}
}

func TestConvAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type cfg struct {
		name                string
		nb, c, m, group     int
		in, k, s, d, pb, pe [3]int
		rank                int
		bias                bool
	}
	one := [3]int{1, 1, 1}
	cases := []cfg{
		{"basic", 1, 2, 3, 1, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{}, [3]int{}, 2, true},
		{"batch2_nobias", 2, 2, 3, 1, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{}, [3]int{}, 2, false},
		{"group2", 1, 4, 6, 2, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{}, [3]int{}, 2, true},
		{"depthwise", 2, 3, 3, 3, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{0, 1, 1}, [3]int{0, 1, 1}, 2, true},
		{"depthwise_stride2", 1, 4, 4, 4, [3]int{1, 7, 6}, [3]int{1, 3, 3}, [3]int{1, 2, 2}, one, [3]int{0, 1, 0}, [3]int{0, 1, 2}, 2, true},
		{"depthwise_mult2", 1, 3, 6, 3, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{0, 1, 1}, [3]int{0, 1, 1}, 2, false},
		{"stride2_pad", 1, 2, 3, 1, [3]int{1, 7, 7}, [3]int{1, 3, 3}, [3]int{1, 2, 2}, one, [3]int{0, 1, 1}, [3]int{0, 1, 1}, 2, true},
		{"pads_asym", 1, 2, 3, 1, [3]int{1, 5, 5}, [3]int{1, 3, 3}, one, one, [3]int{0, 1, 2}, [3]int{0, 0, 1}, 2, true},
		{"dilation", 1, 2, 2, 1, [3]int{1, 7, 7}, [3]int{1, 3, 3}, one, [3]int{1, 2, 3}, [3]int{0, 2, 1}, [3]int{0, 0, 1}, 2, true},
		{"pointwise", 2, 4, 5, 1, [3]int{1, 3, 3}, one, one, one, [3]int{}, [3]int{}, 2, true},
		{"pointwise_group", 1, 4, 4, 2, [3]int{1, 3, 4}, one, one, one, [3]int{}, [3]int{}, 2, true},
		{"pointwise_stride", 1, 4, 5, 1, [3]int{1, 5, 5}, one, [3]int{1, 2, 2}, one, [3]int{}, [3]int{}, 2, true},
		{"rect", 1, 2, 2, 1, [3]int{1, 5, 6}, [3]int{1, 2, 3}, [3]int{1, 1, 2}, one, [3]int{}, [3]int{}, 2, true},
		{"big_pad", 1, 1, 2, 1, [3]int{1, 2, 2}, [3]int{1, 3, 3}, [3]int{1, 3, 1}, one, [3]int{0, 3, 2}, [3]int{0, 3, 2}, 2, true},
		// More output positions than one im2col block: several blocks.
		{"blocked", 2, 3, 4, 1, [3]int{1, 23, 21}, [3]int{1, 3, 3}, one, one, [3]int{0, 1, 0}, [3]int{0, 1, 2}, 2, true},
		{"blocked_group", 1, 4, 4, 2, [3]int{1, 20, 30}, [3]int{1, 3, 3}, [3]int{1, 1, 2}, one, [3]int{0, 1, 1}, [3]int{0, 1, 1}, 2, true},
		{"blocked_wide", 1, 2, 2, 1, [3]int{1, 3, 300}, [3]int{1, 2, 3}, one, one, [3]int{}, [3]int{}, 2, true},
		{"conv1d_long", 1, 2, 3, 1, [3]int{1, 1, 600}, [3]int{1, 1, 5}, one, one, [3]int{0, 0, 2}, [3]int{0, 0, 2}, 1, true},
		{"conv1d", 2, 3, 4, 1, [3]int{1, 1, 9}, [3]int{1, 1, 3}, [3]int{1, 1, 2}, one, [3]int{0, 0, 1}, [3]int{0, 0, 1}, 1, true},
		{"conv3d", 1, 2, 3, 1, [3]int{4, 5, 5}, [3]int{2, 3, 3}, [3]int{1, 2, 1}, one, [3]int{1, 1, 0}, [3]int{0, 1, 1}, 3, true},
		{"conv3d_blocked", 1, 2, 3, 1, [3]int{6, 10, 10}, [3]int{3, 3, 3}, one, one, one, one, 3, true},
		{"conv3d_depthwise", 1, 2, 2, 2, [3]int{3, 4, 4}, [3]int{3, 3, 3}, one, one, one, one, 3, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cg := tc.c / tc.group
			lo := 3 - tc.rank
			xs := append([]int{tc.nb, tc.c}, tc.in[lo:]...)
			ws := append([]int{tc.m, cg}, tc.k[lo:]...)
			x := tensor.FromFloat32(xs, cnnRand(r, tensor.NumElements(xs)))
			w := tensor.FromFloat32(ws, cnnRand(r, tensor.NumElements(ws)))
			var b *tensor.Tensor
			var bv []float32
			if tc.bias {
				bv = cnnRand(r, tc.m)
				b = tensor.FromFloat32([]int{tc.m}, bv)
			}
			var pads []int64
			for _, p := range tc.pb[lo:] {
				pads = append(pads, int64(p))
			}
			for _, p := range tc.pe[lo:] {
				pads = append(pads, int64(p))
			}
			var strides, dils []int64
			for i := lo; i < 3; i++ {
				strides = append(strides, int64(tc.s[i]))
				dils = append(dils, int64(tc.d[i]))
			}
			attrs := []*onnx.Attribute{cnnAInts("pads", pads...), cnnAInts("strides", strides...),
				cnnAInts("dilations", dils...), cnnAInt("group", int64(tc.group))}
			k, err := newConv(cnnNode("Conv", 17, []string{"x", "w", "b"}, []string{"y"}, attrs, nil, w, b))
			if err != nil {
				t.Fatal(err)
			}
			y := cnnRun(t, k, []*tensor.Tensor{x, w, b})[0]
			want, out := naiveConv(x.F32, w.F32, bv, tc.nb, tc.c, tc.in, tc.m, tc.k, tc.group, tc.s, tc.d, tc.pb, tc.pe)
			wantShape := append([]int{tc.nb, tc.m}, out[lo:]...)
			if !reflect.DeepEqual(y.Shape, wantShape) {
				t.Fatalf("shape %v, want %v", y.Shape, wantShape)
			}
			cnnClose(t, y.F32, want, 1e-5)

			// The same through FP64.
			x64, w64 := cnnTo64(x), cnnTo64(w)
			var b64 *tensor.Tensor
			if b != nil {
				b64 = cnnTo64(b)
			}
			y64 := cnnRun(t, k, []*tensor.Tensor{x64, w64, b64})[0]
			for i, v := range y64.F64 {
				if math.Abs(v-float64(want[i])) > 1e-5 {
					t.Fatalf("fp64 [%d] = %v, want %v", i, v, want[i])
				}
			}
		})
	}
}

func cnnTo64(t *tensor.Tensor) *tensor.Tensor {
	v := make([]float64, len(t.F32))
	for i, x := range t.F32 {
		v[i] = float64(x)
	}
	return tensor.FromFloat64(append([]int(nil), t.Shape...), v)
}

func TestConvErrors(t *testing.T) {
	w := tensor.FromFloat32([]int{2, 1, 3, 3}, make([]float32, 18))
	load := []struct {
		name  string
		attrs []*onnx.Attribute
		w     *tensor.Tensor
		want  string
	}{
		{"auto_pad", []*onnx.Attribute{cnnAStr("auto_pad", "SAME")}, nil, "auto_pad"},
		{"group0", []*onnx.Attribute{cnnAInt("group", 0)}, nil, "group"},
		{"group_mismatch", []*onnx.Attribute{cnnAInt("group", 3)}, w, "group 3"},
		{"kernel_shape", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2)}, w, "kernel_shape"},
		{"stride0", []*onnx.Attribute{cnnAInts("strides", 0, 1)}, nil, "strides"},
		{"negative_pad", []*onnx.Attribute{cnnAInts("pads", -1, 0, 0, 0)}, nil, "pads"},
		{"odd_pads", []*onnx.Attribute{cnnAInts("pads", 1, 1, 1)}, nil, "pads"},
		{"rank_mismatch", []*onnx.Attribute{cnnAInts("strides", 1, 1, 1)}, w, "spatial"},
		{"rank4", nil, tensor.FromFloat32([]int{1, 1, 1, 1, 1, 1}, []float32{1}), "4 spatial dimensions"},
		{"int_weights", nil, tensor.FromInt64([]int{1, 1, 1, 1}, []int64{1}), "INT64"},
	}
	for _, tc := range load {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newConv(cnnNode("Conv", 13, []string{"x", "w"}, []string{"y"}, tc.attrs, nil, tc.w))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	k, err := newConv(cnnNode("Conv", 13, []string{"x", "w"}, []string{"y"}, nil, nil, w))
	if err != nil {
		t.Fatal(err)
	}
	run := []struct {
		name string
		x    *tensor.Tensor
		want string
	}{
		{"channels", tensor.New(tensor.Float32, []int{1, 2, 5, 5}), "channels"},
		{"too_small", tensor.New(tensor.Float32, []int{1, 1, 2, 5}), "smaller than the kernel"},
		{"rank", tensor.New(tensor.Float32, []int{1, 1, 5}), "rank"},
		{"dtype", tensor.New(tensor.Float64, []int{1, 1, 5, 5}), "FP64"},
	}
	for _, tc := range run {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k([]*tensor.Tensor{tc.x, w})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestCNNModel loads a whole graph (Conv, BatchNormalization, MaxPool,
// Pad, AveragePool, GlobalAveragePool) through the loader, with weights as
// initializers, and runs it twice: weights must survive the first call.
func TestCNNModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w := tensor.FromFloat32([]int{4, 2, 3, 3}, cnnRand(r, 72))
	b := tensor.FromFloat32([]int{4}, cnnRand(r, 4))
	sc := tensor.FromFloat32([]int{4}, []float32{1, 2, 0.5, 1})
	sh := tensor.FromFloat32([]int{4}, []float32{0, 1, -1, 0.5})
	mean := tensor.FromFloat32([]int{4}, []float32{0.1, 0, 0.2, -0.1})
	vr := tensor.FromFloat32([]int{4}, []float32{1, 0.5, 2, 1})
	pads := tensor.FromInt64([]int{8}, []int64{0, 0, 1, 1, 0, 0, 1, 1})
	g := &onnx.Graph{
		Initializers: []*onnx.TensorProto{onnx.FromTensor("w", w), onnx.FromTensor("b", b),
			onnx.FromTensor("sc", sc), onnx.FromTensor("sh", sh), onnx.FromTensor("mean", mean),
			onnx.FromTensor("var", vr), onnx.FromTensor("pads", pads)},
		Inputs:  []*onnx.ValueInfo{{Name: "x", ElemType: onnx.DataFloat}},
		Outputs: []*onnx.ValueInfo{{Name: "y", ElemType: onnx.DataFloat}},
		Nodes: []*onnx.Node{
			{OpType: "Conv", Inputs: []string{"x", "w", "b"}, Outputs: []string{"c"}, Attrs: []*onnx.Attribute{cnnAInts("pads", 1, 1, 1, 1)}},
			{OpType: "BatchNormalization", Inputs: []string{"c", "sc", "sh", "mean", "var"}, Outputs: []string{"n"}},
			{OpType: "MaxPool", Inputs: []string{"n"}, Outputs: []string{"p"}, Attrs: []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInts("strides", 2, 2)}},
			{OpType: "Pad", Inputs: []string{"p", "pads"}, Outputs: []string{"q"}, Attrs: []*onnx.Attribute{cnnAStr("mode", "reflect")}},
			{OpType: "AveragePool", Inputs: []string{"q"}, Outputs: []string{"a"}, Attrs: []*onnx.Attribute{cnnAInts("kernel_shape", 3, 3)}},
			{OpType: "GlobalAveragePool", Inputs: []string{"a"}, Outputs: []string{"y"}},
		},
	}
	m, err := LoadBytes(onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 17}}, Graph: g}))
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.FromFloat32([]int{1, 2, 6, 6}, cnnRand(r, 72))
	var first []float32
	for run := range 2 {
		out, err := m.Infer(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		y := out["y"]
		if !reflect.DeepEqual(y.Shape, []int{1, 4, 1, 1}) {
			t.Fatalf("shape %v", y.Shape)
		}
		if run == 0 {
			first = y.F32
		} else if !reflect.DeepEqual(first, y.F32) {
			t.Fatalf("second run %v differs from first %v", y.F32, first)
		}
	}
	// Training mode is refused at load time.
	g.Nodes[1].Attrs = []*onnx.Attribute{cnnAInt("training_mode", 1)}
	_, err = LoadBytes(onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 17}}, Graph: g}))
	if err == nil || !strings.Contains(err.Error(), "training_mode") {
		t.Fatalf("error %v, want training_mode", err)
	}
}
