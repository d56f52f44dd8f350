package drill

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/bulwark-ml/bulwark/internal/onnx"
)

// brokenElements is the size the broken version reshapes its input to:
// a prime, so that no batch of a real model's input divides into it and
// every request smaller than that fails.
const brokenElements = 1000003

// Names of what BrokenVersion adds to a graph; a suffix is appended when
// the model already uses one of them.
const (
	brokenShapeName  = "bulwark_drill_shape"
	brokenOutputName = "bulwark_drill_broken"
	brokenNodeName   = "bulwark_drill_reshape"
)

// BrokenVersion returns a copy of an ONNX model that loads but fails
// every ordinary request: its first input is also reshaped to
// [-1, 1000003], a new graph output, and any input of fewer elements
// cannot take that shape. The runtime cannot know the batch size at load
// time, so the copy passes the checks of a push and fails only under
// traffic: the bad version a bad rollout needs.
func BrokenVersion(onnxBytes []byte) ([]byte, error) {
	m, err := onnx.Decode(onnxBytes)
	if err != nil {
		return nil, fmt.Errorf("decode model: %w", err)
	}
	g := m.Graph
	if g == nil {
		return nil, errors.New("decode model: the model has no graph")
	}
	in := firstRealInput(g)
	if in == nil {
		return nil, errors.New("the model has no graph input to break")
	}
	used := graphNames(g)
	shape := unusedName(brokenShapeName, used)
	used[shape] = true
	out := unusedName(brokenOutputName, used)
	used[out] = true
	node := unusedName(brokenNodeName, used)

	g.Initializers = append(g.Initializers, &onnx.TensorProto{
		Name: shape, Dims: []int64{2}, DataType: onnx.DataInt64, Int64Data: []int64{-1, brokenElements},
	})
	g.Nodes = append(g.Nodes, &onnx.Node{
		Name: node, OpType: "Reshape", Inputs: []string{in.Name, shape}, Outputs: []string{out},
	})
	// Rank 2 with both dimensions dynamic: the reshape's result has no
	// size known before a request.
	g.Outputs = append(g.Outputs, &onnx.ValueInfo{
		Name: out, ElemType: in.ElemType, HasShape: true,
		Dims: []onnx.Dim{{Param: "bulwark_drill_rows"}, {Param: "bulwark_drill_cols"}},
	})
	doc := "A deliberately broken copy made by bulwark drill for a bad-rollout phase: " +
		"it loads, but every request whose input " + strconv.Quote(in.Name) + " has fewer than " +
		strconv.Itoa(brokenElements) + " elements fails. Never serve it."
	if m.DocString != "" {
		doc += " The original's description: " + m.DocString
	}
	m.DocString = doc
	return onnx.Encode(m), nil
}

// firstRealInput is the graph's first input that is not an initializer:
// older models list their weights among the inputs too.
func firstRealInput(g *onnx.Graph) *onnx.ValueInfo {
	weights := map[string]bool{}
	for _, t := range g.Initializers {
		weights[t.Name] = true
	}
	for _, in := range g.Inputs {
		if !weights[in.Name] && !in.NotTensor {
			return in
		}
	}
	return nil
}

// graphNames is every node and value name of the graph.
func graphNames(g *onnx.Graph) map[string]bool {
	used := map[string]bool{}
	for _, t := range g.Initializers {
		used[t.Name] = true
	}
	for _, vis := range [][]*onnx.ValueInfo{g.Inputs, g.Outputs, g.ValueInfo} {
		for _, vi := range vis {
			used[vi.Name] = true
		}
	}
	for _, n := range g.Nodes {
		used[n.Name] = true
		for _, s := range n.Inputs {
			used[s] = true
		}
		for _, s := range n.Outputs {
			used[s] = true
		}
	}
	return used
}

// unusedName is name, or name with the first numeric suffix not in used.
func unusedName(name string, used map[string]bool) string {
	candidate := name
	for i := 2; used[candidate]; i++ {
		candidate = name + "_" + strconv.Itoa(i)
	}
	return candidate
}
