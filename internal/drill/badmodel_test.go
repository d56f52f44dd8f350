package drill

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/sample"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// loadModelFile loads a model file the way a node does.
func loadModelFile(t *testing.T, b []byte) runtime.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := builtin.New().Load(context.Background(), runtime.Source{Name: sample.ModelName, Version: "1", Format: "onnx", Path: path})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestBrokenVersionLoadsButFailsRequests(t *testing.T) {
	original := sample.Build().ONNX
	broken, err := BrokenVersion(original)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := loadModelFile(t, original), loadModelFile(t, broken)

	x := sample.Example()[0]
	input := func() map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{sample.InputName: tensor.FromFloat32([]int{1, 4}, x[:])}
	}
	out, err := good.Infer(context.Background(), input(), nil)
	if err != nil {
		t.Fatalf("the original model fails: %v", err)
	}
	if out[sample.LabelName] == nil {
		t.Fatalf("the original model gave no %s: %v", sample.LabelName, out)
	}
	for _, outputs := range [][]string{nil, {sample.LabelName}} {
		if _, err := bad.Infer(context.Background(), input(), outputs); err == nil || !strings.Contains(strings.ToLower(err.Error()), "reshape") {
			t.Fatalf("the broken model (outputs %v): err = %v, want a Reshape failure", outputs, err)
		}
	}

	// The broken copy keeps the original's interface and adds one output.
	sig, wantSig := bad.Signature(), good.Signature()
	if len(sig.Inputs) != len(wantSig.Inputs) || sig.Inputs[0].Name != wantSig.Inputs[0].Name {
		t.Errorf("inputs %v, want %v", sig.Inputs, wantSig.Inputs)
	}
	if n := len(sig.Outputs); n != len(wantSig.Outputs)+1 || sig.Outputs[n-1].Name != brokenOutputName {
		t.Errorf("outputs %v, want the original's and %s", sig.Outputs, brokenOutputName)
	}
	m, err := onnx.Decode(broken)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.DocString, "deliberately broken copy made by bulwark drill") {
		t.Errorf("doc string %q", m.DocString)
	}
}

func TestBrokenVersionAvoidsNameCollisions(t *testing.T) {
	m, err := onnx.Decode(sample.Build().ONNX)
	if err != nil {
		t.Fatal(err)
	}
	// Rename the model's output to the name BrokenVersion would use.
	g := m.Graph
	last := g.Outputs[len(g.Outputs)-1]
	for _, n := range g.Nodes {
		for i, o := range n.Outputs {
			if o == last.Name {
				n.Outputs[i] = brokenOutputName
			}
		}
	}
	last.Name = brokenOutputName
	broken, err := BrokenVersion(onnx.Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	bad := loadModelFile(t, broken)
	names := map[string]bool{}
	for _, o := range bad.Signature().Outputs {
		if names[o.Name] {
			t.Fatalf("output %s twice in %v", o.Name, bad.Signature().Outputs)
		}
		names[o.Name] = true
	}
	if !names[brokenOutputName] || !names[brokenOutputName+"_2"] {
		t.Fatalf("outputs %v, want %s and %s_2", bad.Signature().Outputs, brokenOutputName, brokenOutputName)
	}
}

func TestBrokenVersionRejectsBadInput(t *testing.T) {
	original := sample.Build().ONNX
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("this is not a model"),
		"truncated": original[:len(original)/2],
		"no graph":  onnx.Encode(&onnx.Model{IRVersion: 8}),
		"no input":  onnx.Encode(&onnx.Model{IRVersion: 8, Graph: &onnx.Graph{Name: "g"}}),
	} {
		before := bytes.Clone(b)
		if out, err := BrokenVersion(b); err == nil {
			t.Errorf("%s: no error, got %d bytes", name, len(out))
		}
		if !bytes.Equal(b, before) {
			t.Errorf("%s: the input was modified", name)
		}
	}
}
