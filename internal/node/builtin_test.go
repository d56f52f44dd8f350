package node

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

var (
	linearW = []float32{0.5, -1, 2, 1.5, 0.25, -0.5, -2, 1, 0, 0.75, 0.125, 3}
	linearB = []float32{0.1, -0.2, 0.3}
)

// linearModel is y = x·W + B with x FP32 [batch,4] and y FP32 [batch,3];
// opType replaces MatMul to build a model the runtime cannot execute.
func linearModel(opType string) []byte {
	dim := func(n int64) onnx.Dim { return onnx.Dim{Value: n, HasValue: true} }
	return onnx.Encode(&onnx.Model{
		IRVersion:    8,
		OpsetImports: []onnx.OpsetID{{Version: 13}},
		ProducerName: "bulwark-test",
		Graph: &onnx.Graph{
			Name: "linear",
			Nodes: []*onnx.Node{
				{Name: "matmul", OpType: opType, Inputs: []string{"x", "W"}, Outputs: []string{"xw"}},
				{Name: "bias", OpType: "Add", Inputs: []string{"xw", "B"}, Outputs: []string{"y"}},
			},
			Initializers: []*onnx.TensorProto{
				onnx.FromTensor("W", tensor.FromFloat32([]int{4, 3}, linearW)),
				onnx.FromTensor("B", tensor.FromFloat32([]int{3}, linearB)),
			},
			Inputs:  []*onnx.ValueInfo{{Name: "x", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, dim(4)}}},
			Outputs: []*onnx.ValueInfo{{Name: "y", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, dim(3)}}},
		},
	})
}

// builtinInspector is the real check a push would run: the model must
// compile in the builtin runtime, and its signature goes in the manifest.
func builtinInspector(_ context.Context, path string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, nil, err
	}
	m, err := builtin.LoadBytes(b)
	if err != nil {
		return "", nil, nil, err
	}
	sig := m.Signature()
	return "onnx", ioSpecs(sig.Inputs), ioSpecs(sig.Outputs), nil
}

func ioSpecs(specs []runtime.TensorSpec) []modelstore.IOSpec {
	out := make([]modelstore.IOSpec, len(specs))
	for i, s := range specs {
		out[i] = modelstore.IOSpec{Name: s.Name, Datatype: s.DType.String(), Shape: s.Shape}
	}
	return out
}

func pushBytes(t testing.TB, st *modelstore.Store, name string, b []byte, inspect modelstore.Inspector) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Push(context.Background(), name, src, inspect, modelstore.PushOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestBuiltinRuntimeFailures needs no operator beyond the graph checks: a
// model with an operator nobody implements, and a file that is not ONNX,
// must each be reported, alone, with the runtime's reason.
func TestBuiltinRuntimeFailures(t *testing.T) {
	n := newTestNode(t, Config{Runtime: builtin.New()}, func(st *modelstore.Store) {
		pushBytes(t, st, "exotic", linearModel("NoSuchOperator"), fakeInspector)
		pushBytes(t, st, "junk", []byte("\xff\xff\xff\xff not a protobuf"), fakeInspector)
	})
	ctx := context.Background()
	for model, reason := range map[string]string{"exotic": "unsupported operator NoSuchOperator", "junk": "load with builtin-onnx"} {
		err := n.c.ModelReady(ctx, model, "")
		if oip.StatusCode(err) != 503 || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: %v, want 503 with %q", model, err, reason)
		}
	}
}

// TestBuiltinRuntimeServes runs a real ONNX model (MatMul + Add) end to end
// through the builtin runtime and the client.
func TestBuiltinRuntimeServes(t *testing.T) {
	n := newTestNode(t, Config{Runtime: builtin.New()}, func(st *modelstore.Store) {
		pushBytes(t, st, "linear", linearModel("MatMul"), builtinInspector)
	})
	ctx := context.Background()
	md, err := n.c.ModelMetadata(ctx, "linear", "")
	if err != nil {
		t.Fatal(err)
	}
	if md.Parameters["ready"] != true || md.Inputs[0].Name != "x" || tensor.ShapeString(toInts(md.Inputs[0].Shape)) != "[-1,4]" ||
		md.Outputs[0].Name != "y" || tensor.ShapeString(toInts(md.Outputs[0].Shape)) != "[-1,3]" {
		t.Fatalf("metadata %+v", md)
	}
	xs := []float32{1, 2, 3, 4, -1, 0.5, 0, 2}
	x, _ := oip.NewInput("x", tensor.FromFloat32([]int{2, 4}, xs))
	resp, err := n.c.Infer(ctx, "linear", "1", &oip.InferRequest{ID: "lin", Inputs: []oip.RequestInput{x}})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := resp.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	y := outs["y"]
	if resp.ID != "lin" || y == nil || tensor.ShapeString(y.Shape) != "[2,3]" {
		t.Fatalf("response %+v", resp)
	}
	for i := range 2 {
		for j := range 3 {
			var want float64
			for k := range 4 {
				want += float64(xs[i*4+k]) * float64(linearW[k*3+j])
			}
			want += float64(linearB[j])
			if got := float64(y.F32[i*3+j]); math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("y[%d,%d] = %v, want %v", i, j, got, want)
			}
		}
	}
	// Wrong feature count is the client's fault, named as such.
	bad, _ := oip.NewInput("x", tensor.FromFloat32([]int{1, 3}, []float32{1, 2, 3}))
	_, err = n.c.Infer(ctx, "linear", "", &oip.InferRequest{Inputs: []oip.RequestInput{bad}})
	if oip.StatusCode(err) != 400 || !strings.Contains(err.Error(), `input "x" has shape [1,3], expected shape [-1,4]`) {
		t.Fatalf("bad shape: %v", err)
	}
}

func toInts(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}
