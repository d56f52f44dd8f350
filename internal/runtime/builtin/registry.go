package builtin

import (
	"fmt"
	"sort"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// kernel computes a node's outputs from its inputs. A missing optional input
// is nil. It must not modify its inputs.
type kernel func(in []*tensor.Tensor) ([]*tensor.Tensor, error)

// opFactory builds the kernel for one node, validating attributes at load
// time. It may precompute from inputs that are constant (weights).
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
	consts []*tensor.Tensor // per input; nil when computed at run time
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

// constInput returns input i's value when it is known at load time.
func (n *nodeInfo) constInput(i int) *tensor.Tensor {
	if i < len(n.consts) {
		return n.consts[i]
	}
	return nil
}

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
