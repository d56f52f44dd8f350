package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
)

// inspectModel is the store's Inspector: a file is valid when the runtime
// that will serve it loads it. That catches unsupported operators at push
// time rather than on the node.
func inspectModel(ctx context.Context, path string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".onnx" {
		return "", nil, nil, fmt.Errorf("unsupported file type %q: Bulwark serves ONNX models (.onnx)", ext)
	}
	m, err := builtin.New().Load(ctx, runtime.Source{Format: "onnx", Path: path})
	if err != nil {
		return "", nil, nil, fmt.Errorf("not a model Bulwark can serve: %w", err)
	}
	defer m.Close()
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
