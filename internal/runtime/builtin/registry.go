package builtin

import (
	"fmt"
	"sort"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// kernel computes a node's outputs from its inputs. A missing optional input
// is nil, and so is an input its factory consumed (see consumeConst). It
// must not modify its inputs.
type kernel func(in []*tensor.Tensor) ([]*tensor.Tensor, error)

// opFactory builds the kernel for one node, validating attributes at load
// time. It may precompute from inputs that are constant (weights); when the
// precomputed form replaces the input entirely, it says so with
// consumeConst, so the runtime need not keep the original.
type opFactory func(n *nodeInfo) (kernel, error)

var registry = map[string]opFactory{}

// register adds an operator of the default ONNX domain. Called from init in
// the ops_*.go files.
func register(opType string, f opFactory) {
	if _, dup := registry[opType]; dup {
		panic("builtin: operator registered twice: " + opType)
	}
	registry[opType] = f
}

// SupportedOps lists the operators the interpreter can run, sorted.
func SupportedOps() []string {
	ops := make([]string, 0, len(registry))
	for op := range registry {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// nodeInfo is what a factory sees of a node: its attributes, the opset in
// force, and the values of inputs known at load time.
type nodeInfo struct {
	node   *onnx.Node
	opset  int64
	attrs  map[string]*onnx.Attribute
	consts []*tensor.Tensor // per input; nil when computed at run time (or not converted yet)
	// consumed[i] is set by consumeConst; nil until a factory calls it.
	consumed []bool
	// When compiling, the builder and the input's value ids (-1 absent):
	// an initializer is converted to a tensor only when constInput asks.
	// Nil in tests that fill consts directly.
	b   *builder
	ids []int
}

func (n *nodeInfo) name() string {
	if n.node.Name != "" {
		return n.node.Name
	}
	return n.node.OpType
}

// numInputs counts the inputs the node names, including empty optional ones.
func (n *nodeInfo) numInputs() int { return len(n.node.Inputs) }

// hasInput reports whether optional input i is present.
func (n *nodeInfo) hasInput(i int) bool { return i < len(n.node.Inputs) && n.node.Inputs[i] != "" }

// constInput returns input i's value when it is known at load time,
// converting an initializer on first use.
func (n *nodeInfo) constInput(i int) *tensor.Tensor {
	if i >= len(n.consts) {
		return nil
	}
	if n.consts[i] == nil && n.pending(i) != nil {
		n.consts[i] = n.b.constValue(n.ids[i])
	}
	return n.consts[i]
}

// isConst reports whether input i is known at load time, without
// converting it.
func (n *nodeInfo) isConst(i int) bool {
	return i < len(n.consts) && (n.consts[i] != nil || n.pending(i) != nil)
}

// pending returns input i's initializer while it is not converted yet.
func (n *nodeInfo) pending(i int) *onnx.TensorProto {
	if n.b == nil || i >= len(n.ids) || n.ids[i] < 0 {
		return nil
	}
	return n.b.lazy[n.ids[i]]
}

// constDType returns constant input i's datatype, without converting it.
func (n *nodeInfo) constDType(i int) (tensor.DType, bool) {
	if tp := n.pending(i); tp != nil {
		dt, err := onnx.DTypeOf(tp.DataType) // checked when compile started
		return dt, err == nil
	}
	if i < len(n.consts) && n.consts[i] != nil {
		return n.consts[i].DType, true
	}
	return tensor.Invalid, false
}

// rawConst returns input i's initializer when it is still unconverted and
// stored as raw little-endian data (as exporters store weights): a factory
// that keeps its own form of the constant can build it straight from the
// file's bytes, with no intermediate tensor, then consumeConst it.
func (n *nodeInfo) rawConst(i int) *onnx.TensorProto {
	if tp := n.pending(i); tp != nil && tp.HasRawData {
		return tp
	}
	return nil
}

// consumeConst declares that the kernel has captured everything it needs
// from constant input i (a packed copy of a weight, say) and never reads
// in[i] at run time: the kernel is then passed nil there, at load time too.
// Once compiled, a constant that every run-time reader has consumed, and
// that is not a graph output, is released, so the model holds one copy of
// it (the factory's) instead of two. It panics if input i is not constant:
// that is a bug in the factory.
func (n *nodeInfo) consumeConst(i int) {
	if !n.isConst(i) {
		panic(fmt.Sprintf("builtin: %s consumes input %d, which is not constant", n.node.OpType, i))
	}
	if n.consumed == nil {
		n.consumed = make([]bool, len(n.consts))
	}
	n.consumed[i] = true
}

// isConsumed reports whether the factory consumed input i.
func (n *nodeInfo) isConsumed(i int) bool { return i < len(n.consumed) && n.consumed[i] }

func (n *nodeInfo) attrInt(name string, def int64) int64 {
	if a, ok := n.attrs[name]; ok {
		return a.I
	}
	return def
}

func (n *nodeInfo) attrFloat(name string, def float32) float32 {
	if a, ok := n.attrs[name]; ok {
		return a.F
	}
	return def
}

func (n *nodeInfo) attrString(name, def string) string {
	if a, ok := n.attrs[name]; ok {
		return string(a.S)
	}
	return def
}

// attrInts returns a list attribute and whether it was given.
func (n *nodeInfo) attrInts(name string) ([]int64, bool) {
	a, ok := n.attrs[name]
	if !ok {
		return nil, false
	}
	return a.Ints, true
}

func (n *nodeInfo) attrTensor(name string) (*tensor.Tensor, bool, error) {
	a, ok := n.attrs[name]
	if !ok || a.T == nil {
		return nil, false, nil
	}
	t, err := onnx.ToTensor(a.T)
	return t, true, err
}

func (n *nodeInfo) hasAttr(name string) bool {
	_, ok := n.attrs[name]
	return ok
}

// errorf formats a load-time error about this node.
func (n *nodeInfo) errorf(format string, args ...any) error {
	return fmt.Errorf("%s node %q: %s", n.node.OpType, n.name(), fmt.Sprintf(format, args...))
}
