package builtin

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// xorshiftInput fills n float32 values in [-1, 1) with the xorshift32
// sequence bench/ort/cnn_latency.cjs uses, so both runtimes see the same
// input bytes.
func xorshiftInput(n int) []float32 {
	data := make([]float32, n)
	s := uint32(0x9e3779b9)
	for i := range data {
		s ^= s << 13
		s ^= s >> 17
		s ^= s << 5
		data[i] = float32(float64(s)/4294967296*2 - 1)
	}
	return data
}

// benchInfer times whole-model Infer calls (signature checks, every
// kernel, output map) on one input.
func benchInfer(b *testing.B, m *Model, name string, in *tensor.Tensor) {
	ctx := context.Background()
	inputs := map[string]*tensor.Tensor{name: in}
	if _, err := m.Infer(ctx, inputs, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Infer(ctx, inputs, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSampleModel runs the demo model (internal/sample: Gemm, Relu,
// Gemm, Softmax, ArgMax on [batch,4]) as `bulwark up` serves it.
func BenchmarkSampleModel(b *testing.B) {
	m, err := LoadBytes(sample.Build().ONNX)
	if err != nil {
		b.Fatal(err)
	}
	rows := sample.Example()
	for _, batch := range []int{1, 8} {
		data := make([]float32, 0, batch*4)
		for i := range batch {
			r := rows[i%len(rows)]
			data = append(data, r[:]...)
		}
		x := tensor.FromFloat32([]int{batch, 4}, data)
		b.Run("batch"+strconv.Itoa(batch), func(b *testing.B) { benchInfer(b, m, sample.InputName, x) })
	}
}

// BenchmarkSmallCNN runs testdata/bench/small_cnn.onnx on one 3x32x32
// image, the model bench/ort/cnn_latency.cjs times in onnxruntime.
func BenchmarkSmallCNN(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bench", "small_cnn.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := LoadBytes(raw)
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.FromFloat32([]int{1, 3, 32, 32}, xorshiftInput(3*32*32))
	b.Run("batch1", func(b *testing.B) { benchInfer(b, m, m.Signature().Inputs[0].Name, x) })
}

// bigMLP encodes the model bench/bigmodel writes by default: input FP32
// [batch,256], three Gemm(transB)+Relu layers of width 2048, Gemm to 10,
// Softmax; 8.9 M float32 weights (about 36 MB).
func bigMLP() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	dim := func(v int) onnx.Dim { return onnx.Dim{Value: int64(v), HasValue: true} }
	g := &onnx.Graph{
		Name:    "big_mlp",
		Inputs:  []*onnx.ValueInfo{{Name: "input", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, dim(256)}}},
		Outputs: []*onnx.ValueInfo{{Name: "probabilities", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, dim(10)}}},
	}
	x, width := "input", 256
	for i, w := range []int{2048, 2048, 2048, 10} {
		wn, bn, y := "w"+strconv.Itoa(i), "b"+strconv.Itoa(i), "fc"+strconv.Itoa(i)
		g.Initializers = append(g.Initializers,
			onnx.FromTensor(wn, tensor.FromFloat32([]int{w, width}, cnnRand(r, w*width))),
			onnx.FromTensor(bn, tensor.FromFloat32([]int{w}, make([]float32, w))))
		g.Nodes = append(g.Nodes, &onnx.Node{OpType: "Gemm", Inputs: []string{x, wn, bn}, Outputs: []string{y},
			Attrs: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, I: 1}}})
		x, width = y, w
		if i < 3 {
			g.Nodes = append(g.Nodes, &onnx.Node{OpType: "Relu", Inputs: []string{y}, Outputs: []string{"relu" + strconv.Itoa(i)}})
			x = "relu" + strconv.Itoa(i)
		}
	}
	g.Nodes = append(g.Nodes, &onnx.Node{OpType: "Softmax", Inputs: []string{x}, Outputs: []string{"probabilities"},
		Attrs: []*onnx.Attribute{{Name: "axis", Type: onnx.AttrInt, I: 1}}})
	return onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 13}}, Graph: g})
}

// BenchmarkBigMLP loads (LoadBytes) and runs (Infer, batch 1) the 36 MB
// MLP that bench/memory.sh serves. B/op of "load" is what loading costs
// on top of the file bytes; with -memprofile it shows where.
func BenchmarkBigMLP(b *testing.B) {
	raw := bigMLP()
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := LoadBytes(raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(raw)), "file-bytes")
	})
	m, err := LoadBytes(raw)
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.FromFloat32([]int{1, 256}, xorshiftInput(256))
	b.Run("infer_batch1", func(b *testing.B) { benchInfer(b, m, "input", x) })
}
