package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// ErrInvalidInput is wrapped by Infer errors caused by the caller's tensors
// (wrong name, datatype or shape). The node maps it to HTTP 400; any other
// Infer error is the server's fault (500).
var ErrInvalidInput = errors.New("invalid input")

// TensorSpec describes one input or output. A -1 dimension accepts any
// size; a nil Shape means the rank itself is unknown and anything fits.
type TensorSpec struct {
	Name  string
	DType tensor.DType
	Shape []int
}

// Signature lists a model's inputs and outputs in declaration order.
type Signature struct {
	Inputs  []TensorSpec
	Outputs []TensorSpec
}

// Source says where a model version's files are. The model store has
// verified their checksums before a runtime sees them.
type Source struct {
	Name    string
	Version string
	Format  string // e.g. "onnx"
	Path    string // the primary artifact
}

// Runtime loads model versions.
type Runtime interface {
	// Name identifies the runtime in metadata and logs ("builtin-onnx").
	Name() string
	// Load prepares a model for inference. Everything the runtime cannot
	// execute (an unknown operator, an unsupported datatype) must fail here,
	// naming the offending part, never later at request time.
	Load(ctx context.Context, src Source) (Model, error)
}

// Model is a loaded, immutable model version. Infer is safe for concurrent
// use and deterministic: the same inputs give the same outputs on every call.
type Model interface {
	Signature() Signature
	// Infer runs the model. outputs selects which outputs to compute; empty
	// means all. Tensors in the result may share memory with the model and
	// must not be modified by the caller.
	Infer(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
	Close() error
}

// CheckInputs verifies that inputs supply exactly the signature's inputs with
// matching datatypes and shapes. Errors wrap ErrInvalidInput and say what was
// expected, so a client can fix its request.
func CheckInputs(sig Signature, inputs map[string]*tensor.Tensor) error {
	for _, spec := range sig.Inputs {
		t, ok := inputs[spec.Name]
		if !ok {
			return fmt.Errorf("%w: missing input %q (expected %v %s)", ErrInvalidInput, spec.Name, spec.DType, shapeDesc(spec.Shape))
		}
		if t.DType != spec.DType {
			return fmt.Errorf("%w: input %q has datatype %v, expected %v", ErrInvalidInput, spec.Name, t.DType, spec.DType)
		}
		if spec.Shape != nil && !tensor.ShapeMatches(spec.Shape, t.Shape) {
			return fmt.Errorf("%w: input %q has shape %s, expected %s", ErrInvalidInput, spec.Name, tensor.ShapeString(t.Shape), shapeDesc(spec.Shape))
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: input %q: %v", ErrInvalidInput, spec.Name, err)
		}
	}
	if len(inputs) != len(sig.Inputs) {
		for name := range inputs {
			if !hasSpec(sig.Inputs, name) {
				return fmt.Errorf("%w: unknown input %q (model inputs: %s)", ErrInvalidInput, name, names(sig.Inputs))
			}
		}
	}
	return nil
}

// CheckOutputs verifies that every requested output exists.
func CheckOutputs(sig Signature, outputs []string) error {
	for _, name := range outputs {
		if !hasSpec(sig.Outputs, name) {
			return fmt.Errorf("%w: unknown output %q (model outputs: %s)", ErrInvalidInput, name, names(sig.Outputs))
		}
	}
	return nil
}

func hasSpec(specs []TensorSpec, name string) bool {
	for _, s := range specs {
		if s.Name == name {
			return true
		}
	}
	return false
}

func names(specs []TensorSpec) string {
	s := ""
	for i, sp := range specs {
		if i > 0 {
			s += ", "
		}
		s += sp.Name
	}
	return s
}

func shapeDesc(shape []int) string {
	if shape == nil {
		return "of any shape"
	}
	return "shape " + tensor.ShapeString(shape)
}
