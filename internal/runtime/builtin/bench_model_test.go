package builtin

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

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
