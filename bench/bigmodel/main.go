// Command bigmodel writes a multi-layer perceptron of a chosen size as an
// ONNX file, with Bulwark's own encoder (internal/onnx) and seeded random
// weights, for memory measurements with a model much larger than the
// sample one:
//
//	bigmodel -o big.onnx [-in 256] [-hidden 2048] [-layers 3] [-out 10]
//
// The graph is input FP32 [batch,in] → Gemm(transB) → Relu → … → Gemm →
// Softmax → output FP32 [batch,out], with layers Gemm-Relu pairs of width
// hidden. The defaults give about 36 MB (8.9 M float32 weights).
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func main() {
	out := flag.String("o", "big.onnx", "file to write")
	in := flag.Int("in", 256, "input features")
	hidden := flag.Int("hidden", 2048, "width of the hidden layers")
	layers := flag.Int("layers", 3, "number of hidden layers (Gemm+Relu)")
	classes := flag.Int("out", 10, "outputs")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *in <= 0 || *hidden <= 0 || *layers <= 0 || *classes <= 0 {
		log.Fatal("-in, -hidden, -layers and -out must be positive")
	}
	rng := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))
	weights := func(n int, fanIn int) []float32 {
		scale := float32(math.Sqrt(2 / float64(fanIn)))
		w := make([]float32, n)
		for i := range w {
			w[i] = scale * float32(rng.NormFloat64())
		}
		return w
	}
	dim := func(v int) onnx.Dim { return onnx.Dim{Value: int64(v), HasValue: true} }
	batch := onnx.Dim{Param: "batch"}
	g := &onnx.Graph{
		Name:    "big_mlp",
		Inputs:  []*onnx.ValueInfo{{Name: "input", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{batch, dim(*in)}}},
		Outputs: []*onnx.ValueInfo{{Name: "probabilities", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{batch, dim(*classes)}}},
	}
	x, width, params := "input", *in, 0
	gemm := func(i, outW int) string {
		w, b, y := fmt.Sprintf("fc%d.weight", i), fmt.Sprintf("fc%d.bias", i), fmt.Sprintf("fc%d", i)
		g.Initializers = append(g.Initializers,
			onnx.FromTensor(w, tensor.FromFloat32([]int{outW, width}, weights(outW*width, width))),
			onnx.FromTensor(b, tensor.FromFloat32([]int{outW}, make([]float32, outW))))
		g.Nodes = append(g.Nodes, &onnx.Node{Name: y, OpType: "Gemm", Inputs: []string{x, w, b}, Outputs: []string{y},
			Attrs: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, I: 1}}})
		params += outW*width + outW
		width = outW
		return y
	}
	for i := 1; i <= *layers; i++ {
		h := gemm(i, *hidden)
		r := fmt.Sprintf("relu%d", i)
		g.Nodes = append(g.Nodes, &onnx.Node{Name: r, OpType: "Relu", Inputs: []string{h}, Outputs: []string{r}})
		x = r
	}
	logits := gemm(*layers+1, *classes)
	g.Nodes = append(g.Nodes, &onnx.Node{Name: "softmax", OpType: "Softmax", Inputs: []string{logits}, Outputs: []string{"probabilities"},
		Attrs: []*onnx.Attribute{{Name: "axis", Type: onnx.AttrInt, I: 1}}})
	b := onnx.Encode(&onnx.Model{
		IRVersion:       8,
		OpsetImports:    []onnx.OpsetID{{Version: 13}},
		ProducerName:    "bulwark",
		ProducerVersion: "bench/bigmodel",
		Graph:           g,
	})
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %s (%d bytes, %d parameters)\n", *out, len(b), params)
}
