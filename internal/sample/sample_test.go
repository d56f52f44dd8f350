package sample

import (
	"bytes"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
)

func TestBuildIsAccurateAndDeterministic(t *testing.T) {
	a := Build()
	if a.Accuracy < 0.9 {
		t.Fatalf("held-out accuracy %.3f, want >= 0.9", a.Accuracy)
	}
	b := Build()
	if !bytes.Equal(a.ONNX, b.ONNX) {
		t.Fatal("two builds differ")
	}
	m, err := onnx.Decode(a.ONNX)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Graph.Nodes) != 5 || m.Graph.Inputs[0].Name != InputName || len(m.Graph.Outputs) != 2 {
		t.Fatalf("unexpected graph: %d nodes", len(m.Graph.Nodes))
	}
}
