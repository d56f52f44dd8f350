package builtin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

type namedTensor struct {
	name string
	t    *tensor.Tensor
}

func randF32(r *rand.Rand, shape ...int) *tensor.Tensor {
	v := make([]float32, tensor.NumElements(shape))
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return tensor.FromFloat32(shape, v)
}

// compileGraph compiles a graph with input x FP32 [2,32] and returns the
// program and each value's id, numbered as compile numbers them:
// initializers in order, then x, then node outputs in order.
func compileGraph(t *testing.T, inits []namedTensor, nodes []*onnx.Node, outputs ...string) (*program, map[string]int) {
	t.Helper()
	g := &onnx.Graph{
		Inputs: []*onnx.ValueInfo{{Name: "x", ElemType: onnx.DataFloat, HasShape: true,
			Dims: []onnx.Dim{{Value: 2, HasValue: true}, {Value: 32, HasValue: true}}}},
		Nodes: nodes,
	}
	ids := map[string]int{}
	for _, in := range inits {
		ids[in.name] = len(ids)
		g.Initializers = append(g.Initializers, onnx.FromTensor(in.name, in.t))
	}
	ids["x"] = len(ids)
	for _, n := range nodes {
		for _, o := range n.Outputs {
			ids[o] = len(ids)
		}
	}
	for _, o := range outputs {
		g.Outputs = append(g.Outputs, &onnx.ValueInfo{Name: o, ElemType: onnx.DataFloat})
	}
	m, err := onnx.Decode(onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 13}}, Graph: g}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compile(m)
	if err != nil {
		t.Fatal(err)
	}
	return p, ids
}

// A constant every run-time reader consumed is released after compile; one
// that a step reads, or that is a graph output, stays; the results do not
// change.
func TestCompileReleasesConsumedConstants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, 2, 32)
	w, bias, shared, small, wo, wt := randF32(r, 32, 24), randF32(r, 24), randF32(r, 32, 32), randF32(r, 4, 24), randF32(r, 32, 24), randF32(r, 24, 32)
	inits := []namedTensor{
		{"w", w}, {"bias", bias}, {"shared", shared}, {"small", small}, {"wo", wo}, {"wt", wt},
		{"st", tensor.FromInt64([]int{1}, []int64{0})}, {"en", tensor.FromInt64([]int{1}, []int64{4})}, {"ax", tensor.FromInt64([]int{1}, []int64{1})},
	}
	nodes := []*onnx.Node{
		// w: packed and consumed by its only reader → released.
		{OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"h"}},
		{OpType: "Add", Inputs: []string{"h", "bias"}, Outputs: []string{"y"}},
		// shared: consumed as B here, but read as A below → kept.
		{OpType: "MatMul", Inputs: []string{"x", "shared"}, Outputs: []string{"y2"}},
		{OpType: "Transpose", Inputs: []string{"x"}, Outputs: []string{"xt"}},
		{OpType: "MatMul", Inputs: []string{"shared", "xt"}, Outputs: []string{"y3"}},
		// small: depth 4 is not packed → kept and read.
		{OpType: "Slice", Inputs: []string{"x", "st", "en", "ax"}, Outputs: []string{"xs"}},
		{OpType: "MatMul", Inputs: []string{"xs", "small"}, Outputs: []string{"y4"}},
		// wo: consumed, but a graph output → kept.
		{OpType: "MatMul", Inputs: []string{"x", "wo"}, Outputs: []string{"y5"}},
		// wt: read only by a node folded at load; its transpose consumed → both released.
		{OpType: "Transpose", Inputs: []string{"wt"}, Outputs: []string{"wtt"}},
		{OpType: "Gemm", Inputs: []string{"x", "wtt", "bias"}, Outputs: []string{"y6"}},
	}
	outs := []string{"y", "y2", "y3", "y4", "wo", "y5", "y6"}
	p, ids := compileGraph(t, inits, nodes, outs...)

	reads := map[int]bool{}
	for _, st := range p.steps {
		for _, id := range st.in {
			reads[id] = true
		}
	}
	for name, kept := range map[string]bool{
		"w": false, "bias": true, "shared": true, "small": true, "wo": true, "wt": false, "wtt": false, "st": true,
	} {
		id := ids[name]
		if got := p.consts[id] != nil; got != kept {
			t.Errorf("constant %s kept = %v, want %v", name, got, kept)
		}
		if !kept && reads[id] {
			t.Errorf("released constant %s is still a step input", name)
		}
	}

	ref := func(a, b *tensor.Tensor) *tensor.Tensor { return mathMatMulRef(a, b) }
	addRow := func(m, row *tensor.Tensor) *tensor.Tensor {
		out := m.Clone()
		for i := range out.F32 {
			out.F32[i] += row.F32[i%len(row.F32)]
		}
		return out
	}
	xt := tensor.New(tensor.Float32, []int{32, 2})
	for i := range 2 {
		for j := range 32 {
			xt.F32[j*2+i] = x.F32[i*32+j]
		}
	}
	wtt := tensor.New(tensor.Float32, []int{32, 24})
	for i := range 24 {
		for j := range 32 {
			wtt.F32[j*24+i] = wt.F32[i*32+j]
		}
	}
	xs := tensor.New(tensor.Float32, []int{2, 4})
	for i := range 2 {
		copy(xs.F32[i*4:], x.F32[i*32:i*32+4])
	}
	want := map[string]*tensor.Tensor{
		"y": addRow(ref(x, w), bias), "y2": ref(x, shared), "y3": ref(shared, xt), "y4": ref(xs, small),
		"wo": wo, "y5": ref(x, wo), "y6": addRow(ref(x, wtt), bias),
	}
	m := &Model{prog: p}
	for range 2 { // twice: the program must not change between calls
		got, err := m.Infer(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range outs {
			mathExpect(t, name, got[name], want[name], 1e-4)
		}
	}
}

// mlpBytes encodes x [batch,width] → layers Gemm(transB)+Relu of width
// width, with random weights.
func mlpBytes(width, layers int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	g := &onnx.Graph{
		Inputs:  []*onnx.ValueInfo{{Name: "x", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, {Value: int64(width), HasValue: true}}}},
		Outputs: []*onnx.ValueInfo{{Name: "y", ElemType: onnx.DataFloat}},
	}
	x := "x"
	for i := range layers {
		w, b, h, y := fmt.Sprint("w", i), fmt.Sprint("b", i), fmt.Sprint("h", i), fmt.Sprint("r", i)
		if i == layers-1 {
			y = "y"
		}
		g.Initializers = append(g.Initializers,
			onnx.FromTensor(w, randF32(r, width, width)), onnx.FromTensor(b, randF32(r, width)))
		g.Nodes = append(g.Nodes,
			&onnx.Node{OpType: "Gemm", Inputs: []string{x, w, b}, Outputs: []string{h}, Attrs: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, I: 1}}},
			&onnx.Node{OpType: "Relu", Inputs: []string{h}, Outputs: []string{y}})
		x = y
	}
	return onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 13}}, Graph: g})
}

// A loaded model holds its Gemm weights once (packed), not twice.
func TestLoadedModelHoldsWeightsOnce(t *testing.T) {
	raw := mlpBytes(512, 4) // 4 MiB of weights
	weights := uint64(4 * 512 * 512 * 4)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m, err := LoadBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	after := heap()
	runtime.KeepAlive(raw)
	held := after - min(after, before)
	t.Logf("model holds %d bytes for %d bytes of weights (%.2fx)", held, weights, float64(held)/float64(weights))
	if held > weights*5/4 {
		t.Errorf("model holds %d bytes for %d bytes of weights: more than one copy", held, weights)
	}
	x := randF32(rand.New(rand.NewPCG(5, 6)), 3, 512)
	out, err := m.Infer(context.Background(), map[string]*tensor.Tensor{"x": x}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out["y"].Shape, []int{3, 512}) {
		t.Fatalf("output shape %v", out["y"].Shape)
	}
	runtime.KeepAlive(m)
}

// Loading converts no packed weight to a tensor: it is packed straight
// from the file's bytes, so loading allocates about one copy of the
// weights in all (TotalAlloc counts every allocation, garbage included).
func TestLoadAllocatesWeightsOnce(t *testing.T) {
	raw := mlpBytes(512, 4)
	weights := uint64(4 * 512 * 512 * 4)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := LoadBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("loading allocated %d bytes for %d bytes of weights (%.2fx)", alloc, weights, float64(alloc)/float64(weights))
	if alloc > weights*3/2 {
		t.Errorf("loading allocated %d bytes for %d bytes of weights: weights converted before packing?", alloc, weights)
	}
	runtime.KeepAlive(m)
}
