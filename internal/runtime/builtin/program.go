package builtin

import (
	"context"
	"fmt"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Supported version ranges. Operators are implemented with the semantics
// they have from opset 13 on (axes as inputs, Softmax on one axis, ...).
const (
	minOpset = 13
	maxOpset = 21
	minIR    = 7
	maxIR    = 10
)

// program is a compiled graph: immutable after build and shared by all calls.
type program struct {
	numValues int
	consts    []*tensor.Tensor // by value id; nil for run-time values
	inputs    []int            // value ids of the signature inputs, in order
	outputs   map[string]int   // output name → value id
	steps     []step
	sig       runtime.Signature
	lastUse   []int // step index after which a value can be dropped; -1 never
}

type step struct {
	op  string
	run kernel
	in  []int // -1 for an absent optional input
	out []int // -1 for an output nobody reads
}

// compile turns a decoded model into a program.
//
// Initializers are validated up front but converted to tensors only when a
// node's factory asks for them, and a constant is dropped as soon as its
// last reader has been built unless some run-time step still reads it (a
// factory that keeps its own form of a constant, such as packed weights,
// says so with consumeConst) or it is a graph output. So the compiled
// program holds one copy of each weight, and while loading, a constant
// converted for a factory that consumes it is garbage before the next node
// is built (Gemm and MatMul weights are packed from the raw bytes and never
// converted at all).
func compile(m *onnx.Model) (*program, error) {
	if m.IRVersion < minIR || m.IRVersion > maxIR {
		return nil, fmt.Errorf("IR version %d is not supported (supported: %d to %d)", m.IRVersion, minIR, maxIR)
	}
	opset, err := defaultOpset(m.OpsetImports)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	p := &program{outputs: map[string]int{}}
	b := &builder{p: p, ids: map[string]int{}, lastRef: map[string]int{}, graphOut: map[string]bool{}}
	for _, init := range g.Initializers {
		if err := onnx.CheckTensor(init); err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		b.lazy[b.newID(init.Name)] = init
	}
	for _, vi := range g.Inputs {
		if _, isInit := b.ids[vi.Name]; isInit {
			continue // an input with a default value: Bulwark treats it as a constant
		}
		spec, err := specOf(vi)
		if err != nil {
			return nil, fmt.Errorf("graph input: %w", err)
		}
		p.inputs = append(p.inputs, b.newID(vi.Name))
		p.sig.Inputs = append(p.sig.Inputs, spec)
	}
	for i, n := range g.Nodes {
		for _, name := range n.Inputs {
			b.lastRef[name] = i
		}
	}
	for _, vi := range g.Outputs {
		b.graphOut[vi.Name] = true
	}
	if err := b.buildSteps(g, opset); err != nil {
		return nil, err
	}
	for _, vi := range g.Outputs {
		id, ok := b.ids[vi.Name]
		if !ok {
			return nil, fmt.Errorf("graph output %q is not produced by any node", vi.Name)
		}
		spec, err := specOf(vi)
		if err != nil {
			return nil, fmt.Errorf("graph output: %w", err)
		}
		p.outputs[vi.Name] = id
		p.sig.Outputs = append(p.sig.Outputs, spec)
	}
	b.finish()
	p.computeLastUse()
	return p, nil
}

// builder is compile's state while it turns nodes into steps.
type builder struct {
	p        *program
	ids      map[string]int      // value name → id
	lazy     []*onnx.TensorProto // by id: an initializer not converted yet
	keep     []bool              // by id: a run-time step reads this constant
	lastRef  map[string]int      // value name → index of the last node naming it as input
	graphOut map[string]bool     // names of the graph outputs
}

func (b *builder) newID(name string) int {
	p := b.p
	id := p.numValues
	p.numValues++
	b.ids[name] = id
	p.consts = append(p.consts, nil)
	b.lazy = append(b.lazy, nil)
	b.keep = append(b.keep, false)
	return id
}

// constValue returns value id's load-time value, converting an initializer
// on first use; nil for a run-time value.
func (b *builder) constValue(id int) *tensor.Tensor {
	if tp := b.lazy[id]; tp != nil {
		t, err := onnx.ToTensor(tp)
		if err != nil {
			// compile ran onnx.CheckTensor on every initializer.
			panic(fmt.Sprintf("builtin: initializer %q passed CheckTensor but does not convert: %v", tp.Name, err))
		}
		b.p.consts[id] = t
		b.lazy[id] = nil
	}
	return b.p.consts[id]
}

// isConst reports whether value id is known at load time.
func (b *builder) isConst(id int) bool { return b.p.consts[id] != nil || b.lazy[id] != nil }

// release drops constant id (named name) once nothing will read it: no
// run-time step reads it unconsumed and it is not a graph output.
func (b *builder) release(id int, name string) {
	if b.keep[id] || b.graphOut[name] {
		return
	}
	b.p.consts[id] = nil
	b.lazy[id] = nil
}

// finish converts constants that are graph outputs and were never read,
// and drops every other constant no run-time step reads.
func (b *builder) finish() {
	isOut := make([]bool, b.p.numValues)
	for _, id := range b.p.outputs {
		isOut[id] = true
	}
	for id := range b.p.consts {
		switch {
		case isOut[id]:
			b.constValue(id)
		case !b.keep[id]:
			b.p.consts[id] = nil
			b.lazy[id] = nil
		}
	}
	b.lazy = nil
}

func defaultOpset(imports []onnx.OpsetID) (int64, error) {
	for _, o := range imports {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			if o.Version < minOpset || o.Version > maxOpset {
				return 0, fmt.Errorf("opset %d is not supported (supported: %d to %d); re-export the model with a supported opset", o.Version, minOpset, maxOpset)
			}
			return o.Version, nil
		}
	}
	return 0, fmt.Errorf("model imports no default ONNX opset")
}

func (b *builder) buildSteps(g *onnx.Graph, opset int64) error {
	p, ids := b.p, b.ids
	for i, n := range g.Nodes {
		if n.Domain != "" && n.Domain != "ai.onnx" {
			return fmt.Errorf("node %d (%s): operator domain %q is not supported", i, n.OpType, n.Domain)
		}
		factory, ok := registry[n.OpType]
		if !ok {
			return fmt.Errorf("unsupported operator %s (node %q); supported: %v", n.OpType, n.Name, SupportedOps())
		}
		info := &nodeInfo{node: n, opset: opset, attrs: map[string]*onnx.Attribute{}, b: b}
		for _, a := range n.Attrs {
			if a.HasGraph {
				return fmt.Errorf("%s node %q: subgraph attributes are not supported", n.OpType, n.Name)
			}
			info.attrs[a.Name] = a
		}
		st := step{op: n.OpType}
		allConst := true
		for _, name := range n.Inputs {
			if name == "" {
				st.in = append(st.in, -1)
				continue
			}
			id, ok := ids[name]
			if !ok {
				return fmt.Errorf("%s node %q: input %q is not defined before use (graph not topologically sorted?)", n.OpType, n.Name, name)
			}
			st.in = append(st.in, id)
			if !b.isConst(id) {
				allConst = false
			}
		}
		// The factory sees constants through info.constInput, which
		// converts an initializer only if asked: one it builds its own
		// form of from the raw bytes (rawConst) is never converted.
		info.ids = st.in
		info.consts = make([]*tensor.Tensor, len(st.in))
		for j, id := range st.in {
			if id >= 0 {
				info.consts[j] = p.consts[id]
			}
		}
		run, err := factory(info)
		if err != nil {
			return err
		}
		st.run = run
		// A consumed input is passed as nil from now on, at load time too;
		// info forgets it so no kernel closure over info keeps it alive.
		// Every other constant input is converted now: the kernel reads it.
		ins := st.in
		st.in = slices.Clone(ins)
		for j, id := range st.in {
			switch {
			case id < 0:
			case info.isConsumed(j):
				st.in[j] = -1
				info.consts[j] = nil
			default:
				info.constInput(j)
			}
		}
		info.b, info.ids = nil, nil
		for _, name := range n.Outputs {
			if name == "" {
				st.out = append(st.out, -1)
				continue
			}
			if _, dup := ids[name]; dup {
				return fmt.Errorf("%s node %q: value %q is assigned twice", n.OpType, n.Name, name)
			}
			st.out = append(st.out, b.newID(name))
		}
		if allConst {
			// Everything this node needs is known now: run it once at load
			// time (weights reshapes, Constant nodes, shape arithmetic).
			if err := p.fold(st, info); err != nil {
				return err
			}
		} else {
			for _, id := range st.in {
				if id >= 0 && p.consts[id] != nil {
					b.keep[id] = true
				}
			}
			p.steps = append(p.steps, st)
		}
		for j, name := range n.Inputs {
			if ins[j] >= 0 && b.lastRef[name] == i {
				b.release(ins[j], name)
			}
		}
	}
	return nil
}

func (p *program) fold(st step, info *nodeInfo) error {
	out, err := st.run(info.consts)
	if err != nil {
		return info.errorf("evaluating constant: %v", err)
	}
	if len(out) < countPresent(st.out) {
		return info.errorf("produced %d outputs, graph expects %d", len(out), len(st.out))
	}
	for i, id := range st.out {
		if id >= 0 {
			p.consts[id] = out[i]
		}
	}
	return nil
}

func countPresent(ids []int) int {
	n := 0
	for i, id := range ids {
		if id >= 0 {
			n = i + 1
		}
	}
	return n
}

// computeLastUse records for each run-time value the last step reading it,
// so Infer can drop intermediates early and keep peak memory low.
func (p *program) computeLastUse() {
	p.lastUse = make([]int, p.numValues)
	for i := range p.lastUse {
		p.lastUse[i] = -1
	}
	for si, st := range p.steps {
		for _, id := range st.in {
			if id >= 0 {
				p.lastUse[id] = si
			}
		}
	}
	for _, id := range p.outputs {
		p.lastUse[id] = len(p.steps) // outputs live to the end
	}
}

func specOf(vi *onnx.ValueInfo) (runtime.TensorSpec, error) {
	if vi.NotTensor {
		return runtime.TensorSpec{}, fmt.Errorf("%q is not a tensor; only tensors are supported", vi.Name)
	}
	dt, err := onnx.DTypeOf(vi.ElemType)
	if err != nil {
		return runtime.TensorSpec{}, fmt.Errorf("%q: %w", vi.Name, err)
	}
	spec := runtime.TensorSpec{Name: vi.Name, DType: dt}
	if vi.HasShape {
		spec.Shape = make([]int, len(vi.Dims))
		for i, d := range vi.Dims {
			spec.Shape[i] = -1
			if d.HasValue && d.Param == "" && d.Value >= 0 {
				spec.Shape[i] = int(d.Value)
			}
		}
	}
	return spec, nil
}

// run executes the program on inputs already checked against the signature.
func (p *program) run(ctx context.Context, inputs map[string]*tensor.Tensor, want []string) (map[string]*tensor.Tensor, error) {
	vals := make([]*tensor.Tensor, p.numValues)
	copy(vals, p.consts)
	for i, id := range p.inputs {
		vals[id] = inputs[p.sig.Inputs[i].Name]
	}
	args := make([]*tensor.Tensor, 0, 8)
	for si, st := range p.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		args = args[:0]
		for _, id := range st.in {
			if id < 0 {
				args = append(args, nil)
			} else {
				args = append(args, vals[id])
			}
		}
		out, err := safeRun(st, args)
		if err != nil {
			return nil, err
		}
		if len(out) < countPresent(st.out) {
			return nil, fmt.Errorf("%s produced %d outputs, graph expects %d", st.op, len(out), len(st.out))
		}
		for i, id := range st.out {
			if id >= 0 {
				vals[id] = out[i]
			}
		}
		for _, id := range st.in {
			if id >= 0 && p.lastUse[id] == si && p.consts[id] == nil {
				vals[id] = nil
			}
		}
	}
	res := make(map[string]*tensor.Tensor, len(want))
	for _, name := range want {
		res[name] = vals[p.outputs[name]]
	}
	return res, nil
}

// safeRun runs one kernel, turning a panic (a kernel bug meeting unexpected
// shapes) into an error so one bad request cannot take the node down.
// Kernel errors at run time come from inputs that passed the signature:
// a graph that cannot run on what it declares it takes is the model's
// fault (a bad version), not the caller's, so they are not
// ErrInvalidInput. The node answers 500, the gateway retries on another
// replica, and a rollout counts them against the new version.
func safeRun(st step, args []*tensor.Tensor) (out []*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: internal error: %v", st.op, r)
		}
	}()
	out, err = st.run(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", st.op, err)
	}
	return out, nil
}
