package builtin

import (
	"context"
	"fmt"
	"os"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Name is the runtime's name in metadata.
const Name = "builtin-onnx"

// Runtime is the pure-Go ONNX runtime.
type Runtime struct{}

var _ runtime.Runtime = Runtime{}

// New returns the builtin runtime.
func New() Runtime { return Runtime{} }

// Name implements runtime.Runtime.
func (Runtime) Name() string { return Name }

// Load implements runtime.Runtime.
func (Runtime) Load(_ context.Context, src runtime.Source) (runtime.Model, error) {
	if src.Format != "" && src.Format != "onnx" {
		return nil, fmt.Errorf("format %q is not supported by %s", src.Format, Name)
	}
	b, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, err
	}
	return LoadBytes(b)
}

// LoadBytes compiles a serialized ONNX model.
func LoadBytes(b []byte) (*Model, error) {
	m, err := onnx.Decode(b)
	if err != nil {
		return nil, err
	}
	p, err := compile(m)
	if err != nil {
		return nil, err
	}
	return &Model{prog: p}, nil
}

// Model is a compiled ONNX model.
type Model struct {
	prog *program
}

var _ runtime.Model = (*Model)(nil)

// Signature implements runtime.Model.
func (m *Model) Signature() runtime.Signature { return m.prog.sig }

// Infer implements runtime.Model.
func (m *Model) Infer(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	sig := m.prog.sig
	if err := runtime.CheckInputs(sig, inputs); err != nil {
		return nil, err
	}
	if err := runtime.CheckOutputs(sig, outputs); err != nil {
		return nil, err
	}
	if len(outputs) == 0 {
		outputs = make([]string, len(sig.Outputs))
		for i, o := range sig.Outputs {
			outputs[i] = o.Name
		}
	}
	return m.prog.run(ctx, inputs, outputs)
}

// Close implements runtime.Model. The model holds only Go memory.
func (m *Model) Close() error { return nil }
