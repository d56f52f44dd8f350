package sample

import (
	"strings"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Names of the sample model and its tensors, used by the demo.
const (
	ModelName   = "iris"
	InputName   = "input"
	ProbsName   = "probabilities"
	LabelName   = "label"
	opsetUsed   = 13
	irVersion   = 8
	trainSeed   = 7
	trainEpochs = 300
)

// Result is a trained sample model.
type Result struct {
	ONNX     []byte
	Accuracy float64 // on a held-out set drawn with another seed
}

// Build trains the sample classifier and serializes it as ONNX.
func Build() Result {
	train := Generate(100, trainSeed)
	m := Train(train, trainEpochs, trainSeed)
	test := Generate(100, trainSeed+1000)
	return Result{ONNX: onnx.Encode(m.toONNX()), Accuracy: m.Accuracy(test)}
}

func (m *mlp) toONNX() *onnx.Model {
	// Fold the input standardisation into the first layer so the file takes
	// raw measurements: w' = w/std, b' = b - Σ w·mean/std.
	w1 := make([]float32, 0, numHidden*numFeatures)
	b1 := make([]float32, numHidden)
	for j := range m.w1 {
		b := m.b1[j]
		for f := range m.w1[j] {
			w := m.w1[j][f] / m.std[f]
			w1 = append(w1, float32(w))
			b -= w * m.mean[f]
		}
		b1[j] = float32(b)
	}
	w2 := make([]float32, 0, numClasses*numHidden)
	b2 := make([]float32, numClasses)
	for c := range m.w2 {
		for j := range m.w2[c] {
			w2 = append(w2, float32(m.w2[c][j]))
		}
		b2[c] = float32(m.b2[c])
	}
	init := func(name string, shape []int, data []float32) *onnx.TensorProto {
		return onnx.FromTensor(name, tensor.FromFloat32(shape, data))
	}
	ints := func(name string, v int64) *onnx.Attribute {
		return &onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
	}
	batch := onnx.Dim{Param: "batch"}
	return &onnx.Model{
		IRVersion:       irVersion,
		OpsetImports:    []onnx.OpsetID{{Domain: "", Version: opsetUsed}},
		ProducerName:    "bulwark",
		ProducerVersion: "sample",
		DocString:       "Iris-like classifier trained by Bulwark on generated data; classes: " + strings.Join(Classes, ", "),
		Metadata:        []onnx.StringPair{{Key: "classes", Value: strings.Join(Classes, ",")}},
		Graph: &onnx.Graph{
			Name: "iris_mlp",
			Initializers: []*onnx.TensorProto{
				init("fc1.weight", []int{numHidden, numFeatures}, w1),
				init("fc1.bias", []int{numHidden}, b1),
				init("fc2.weight", []int{numClasses, numHidden}, w2),
				init("fc2.bias", []int{numClasses}, b2),
			},
			Nodes: []*onnx.Node{
				{Name: "fc1", OpType: "Gemm", Inputs: []string{InputName, "fc1.weight", "fc1.bias"}, Outputs: []string{"h1"}, Attrs: []*onnx.Attribute{ints("transB", 1)}},
				{Name: "relu1", OpType: "Relu", Inputs: []string{"h1"}, Outputs: []string{"a1"}},
				{Name: "fc2", OpType: "Gemm", Inputs: []string{"a1", "fc2.weight", "fc2.bias"}, Outputs: []string{"logits"}, Attrs: []*onnx.Attribute{ints("transB", 1)}},
				{Name: "softmax", OpType: "Softmax", Inputs: []string{"logits"}, Outputs: []string{ProbsName}, Attrs: []*onnx.Attribute{ints("axis", 1)}},
				{Name: "argmax", OpType: "ArgMax", Inputs: []string{ProbsName}, Outputs: []string{LabelName}, Attrs: []*onnx.Attribute{ints("axis", 1), ints("keepdims", 0)}},
			},
			Inputs: []*onnx.ValueInfo{{Name: InputName, ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{batch, {Value: numFeatures, HasValue: true}}}},
			Outputs: []*onnx.ValueInfo{
				{Name: ProbsName, ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{batch, {Value: numClasses, HasValue: true}}},
				{Name: LabelName, ElemType: onnx.DataInt64, HasShape: true, Dims: []onnx.Dim{batch}},
			},
		},
	}
}
