package builtin

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func cnnSeq(shape ...int) *tensor.Tensor {
	v := make([]float32, tensor.NumElements(shape))
	for i := range v {
		v[i] = float32(i)
	}
	return tensor.FromFloat32(shape, v)
}

func TestPoolHandChecked(t *testing.T) {
	x1d := tensor.FromFloat32([]int{1, 1, 4}, []float32{1, 2, 3, 4})
	cases := []struct {
		name  string
		op    string
		attrs []*onnx.Attribute
		x     *tensor.Tensor
		shape []int
		want  []float32
	}{
		{"max_k2s2", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInts("strides", 2, 2)},
			cnnSeq(1, 1, 4, 4), []int{1, 1, 2, 2}, []float32{5, 7, 13, 15}},
		{"max_k3p1", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 3, 3), cnnAInts("pads", 1, 1, 1, 1)},
			cnnSeq(1, 1, 3, 3), []int{1, 1, 3, 3}, []float32{4, 5, 5, 7, 8, 8, 7, 8, 8}},
		{"max_ceil", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInts("strides", 2, 2), cnnAInt("ceil_mode", 1)},
			cnnSeq(1, 1, 5, 5), []int{1, 1, 3, 3}, []float32{6, 8, 9, 16, 18, 19, 21, 23, 24}},
		// The third window would start in the end padding: dropped.
		{"max_ceil_drop", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2), cnnAInts("strides", 2), cnnAInts("pads", 0, 1), cnnAInt("ceil_mode", 1)},
			x1d, []int{1, 1, 2}, []float32{2, 4}},
		{"max_dilation", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2), cnnAInts("dilations", 2)},
			tensor.FromFloat32([]int{1, 1, 5}, []float32{1, 5, 2, 4, 3}), []int{1, 1, 3}, []float32{2, 5, 3}},
		{"max_same_upper", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2), cnnAInts("strides", 2), cnnAStr("auto_pad", "SAME_UPPER")},
			tensor.FromFloat32([]int{1, 1, 5}, []float32{1, 5, 2, 4, 3}), []int{1, 1, 3}, []float32{5, 4, 3}},
		{"max_same_lower", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2), cnnAInts("strides", 2), cnnAStr("auto_pad", "SAME_LOWER")},
			tensor.FromFloat32([]int{1, 1, 5}, []float32{1, 5, 2, 4, 3}), []int{1, 1, 3}, []float32{1, 5, 4}},
		{"max_3d", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2, 2)},
			cnnSeq(1, 2, 2, 2, 3), []int{1, 2, 1, 1, 2}, []float32{10, 11, 22, 23}},
		{"avg_k2s2", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInts("strides", 2, 2)},
			cnnSeq(1, 1, 4, 4), []int{1, 1, 2, 2}, []float32{2.5, 4.5, 10.5, 12.5}},
		{"avg_exclude", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 3, 3), cnnAInts("pads", 1, 1, 1, 1)},
			cnnSeq(1, 1, 3, 3), []int{1, 1, 3, 3}, []float32{2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6}},
		{"avg_include", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 3, 3), cnnAInts("pads", 1, 1, 1, 1), cnnAInt("count_include_pad", 1)},
			cnnSeq(1, 1, 3, 3), []int{1, 1, 3, 3}, []float32{8. / 9, 15. / 9, 12. / 9, 21. / 9, 4, 27. / 9, 20. / 9, 33. / 9, 24. / 9}},
		{"avg_ceil", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 2), cnnAInts("strides", 2), cnnAInt("ceil_mode", 1)},
			tensor.FromFloat32([]int{1, 1, 5}, []float32{1, 2, 3, 4, 5}), []int{1, 1, 3}, []float32{1.5, 3.5, 5}},
		// Include-pad divisors stop at the end padding (onnxruntime).
		{"avg_ceil_include", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 3), cnnAInts("strides", 2), cnnAInts("pads", 1, 1),
			cnnAInt("ceil_mode", 1), cnnAInt("count_include_pad", 1)}, x1d, []int{1, 1, 3}, []float32{1, 3, 2}},
		{"avg_ceil_exclude", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 3), cnnAInts("strides", 2), cnnAInts("pads", 1, 1),
			cnnAInt("ceil_mode", 1)}, x1d, []int{1, 1, 3}, []float32{1.5, 3, 4}},
		{"global_2d", "GlobalAveragePool", nil, cnnSeq(1, 2, 2, 2), []int{1, 2, 1, 1}, []float32{1.5, 5.5}},
		{"global_3d", "GlobalAveragePool", nil, cnnSeq(2, 1, 2, 1, 2), []int{2, 1, 1, 1, 1}, []float32{1.5, 5.5}},
		{"global_1d", "GlobalAveragePool", nil, cnnSeq(1, 1, 3), []int{1, 1, 1}, []float32{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := registry[tc.op](cnnNode(tc.op, 19, []string{"x"}, []string{"y"}, tc.attrs))
			if err != nil {
				t.Fatal(err)
			}
			y := cnnRun(t, k, []*tensor.Tensor{tc.x})[0]
			if !reflect.DeepEqual(y.Shape, tc.shape) {
				t.Fatalf("shape %v, want %v", y.Shape, tc.shape)
			}
			cnnClose(t, y.F32, tc.want, 1e-6)
			y64 := cnnRun(t, k, []*tensor.Tensor{cnnTo64(tc.x)})[0]
			for i, v := range y64.F64 {
				if math.Abs(v-float64(tc.want[i])) > 1e-6 {
					t.Fatalf("fp64 [%d] = %v, want %v", i, v, tc.want[i])
				}
			}
		})
	}
}

func TestMaxPoolIndices(t *testing.T) {
	k, err := newMaxPool(cnnNode("MaxPool", 13, []string{"x"}, []string{"y", "i"},
		[]*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInts("strides", 2, 2)}))
	if err != nil {
		t.Fatal(err)
	}
	out := cnnRun(t, k, []*tensor.Tensor{cnnSeq(1, 2, 4, 4)})
	if len(out) != 2 || out[1].DType != tensor.Int64 {
		t.Fatalf("want values and INT64 indices, got %d outputs", len(out))
	}
	want := []int64{5, 7, 13, 15, 21, 23, 29, 31}
	if !reflect.DeepEqual(out[1].I64, want) || !reflect.DeepEqual(out[1].Shape, []int{1, 2, 2, 2}) {
		t.Fatalf("indices %v shape %v, want %v", out[1].I64, out[1].Shape, want)
	}
}

// naivePool2D is a direct 2-D pool with explicit padding (floor mode).
func naivePool2D(x []float32, nc, h, w, kh, kw, sh, sw, pt, pl, pb, pr int, isMax, includePad bool) []float32 {
	oh, ow := (h+pt+pb-kh)/sh+1, (w+pl+pr-kw)/sw+1
	var y []float32
	for c := range nc {
		for i := range oh {
			for j := range ow {
				best, sum, n := float32(math.Inf(-1)), float32(0), 0
				for a := range kh {
					for b := range kw {
						r, q := i*sh-pt+a, j*sw-pl+b
						if r < 0 || q < 0 || r >= h || q >= w {
							continue
						}
						v := x[(c*h+r)*w+q]
						best, sum, n = max(best, v), sum+v, n+1
					}
				}
				switch {
				case isMax:
					y = append(y, best)
				case includePad:
					y = append(y, sum/float32(kh*kw))
				default:
					y = append(y, sum/float32(n))
				}
			}
		}
	}
	return y
}

func TestPoolAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := [][9]int{ // h, w, kh, kw, sh, sw, pt, pl, pb(=pr)
		{5, 5, 3, 3, 1, 1, 1, 1, 1},
		{7, 6, 3, 2, 2, 3, 0, 1, 1},
		{8, 8, 2, 2, 2, 2, 0, 0, 0},
		{6, 7, 3, 3, 2, 2, 2, 0, 1},
	}
	for _, c := range cases {
		x := tensor.FromFloat32([]int{2, 3, c[0], c[1]}, cnnRand(r, 6*c[0]*c[1]))
		for _, mode := range []string{"max", "avg", "avg_include"} {
			op, include := "AveragePool", int64(0)
			if mode == "max" {
				op = "MaxPool"
			}
			if mode == "avg_include" {
				include = 1
			}
			attrs := []*onnx.Attribute{cnnAInts("kernel_shape", int64(c[2]), int64(c[3])), cnnAInts("strides", int64(c[4]), int64(c[5])),
				cnnAInts("pads", int64(c[6]), int64(c[7]), int64(c[8]), int64(c[8])), cnnAInt("count_include_pad", include)}
			k, err := registry[op](cnnNode(op, 13, []string{"x"}, []string{"y"}, attrs))
			if err != nil {
				t.Fatal(err)
			}
			y := cnnRun(t, k, []*tensor.Tensor{x})[0]
			want := naivePool2D(x.F32, 6, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[8], mode == "max", include == 1)
			cnnClose(t, y.F32, want, 1e-5)
		}
	}
}

func TestPoolErrors(t *testing.T) {
	load := []struct {
		name, op string
		attrs    []*onnx.Attribute
		outputs  []string
		want     string
	}{
		{"no_kernel", "MaxPool", nil, nil, "kernel_shape"},
		{"storage_order", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInt("storage_order", 1)}, nil, "storage_order"},
		{"ceil_mode", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInt("ceil_mode", 2)}, nil, "ceil_mode"},
		{"count_include_pad", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAInt("count_include_pad", 3)}, nil, "count_include_pad"},
		{"auto_pad", "AveragePool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2), cnnAStr("auto_pad", "FULL")}, nil, "auto_pad"},
		{"rank4", "MaxPool", []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2, 2, 2)}, nil, "4 spatial"},
	}
	for _, tc := range load {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry[tc.op](cnnNode(tc.op, 13, []string{"x"}, []string{"y"}, tc.attrs))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	k, err := newMaxPool(cnnNode("MaxPool", 13, []string{"x"}, []string{"y"}, []*onnx.Attribute{cnnAInts("kernel_shape", 2, 2)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*tensor.Tensor{
		tensor.New(tensor.Int64, []int{1, 1, 2, 2}),
		tensor.New(tensor.Float32, []int{1, 1, 2}),
		tensor.New(tensor.Float32, []int{1, 1, 1, 3}),
	} {
		if _, err := k([]*tensor.Tensor{x}); err == nil {
			t.Errorf("input %v %v: no error", x.DType, x.Shape)
		}
	}
	g, _ := newGlobalAveragePool(cnnNode("GlobalAveragePool", 13, []string{"x"}, []string{"y"}, nil))
	if _, err := g([]*tensor.Tensor{tensor.New(tensor.Int32, []int{1, 1, 2})}); err == nil {
		t.Error("GlobalAveragePool INT32: no error")
	}
}
