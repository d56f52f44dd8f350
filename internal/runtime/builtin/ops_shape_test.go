package builtin

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Test helpers shared by the shape-family tests (ops_shape, ops_gather,
// ops_const, ops_reduce).

func shapeAttrInt(name string, v int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

func shapeAttrInts(name string, v ...int64) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func shapeAttrTensor(name string, t *tensor.Tensor) *onnx.Attribute {
	return &onnx.Attribute{Name: name, Type: onnx.AttrTensor, T: onnx.FromTensor(name, t)}
}

// shapeBuild runs op's factory on a node with the given inputs (nil = an
// absent optional input); inputs flagged in consts are known at load time.
func shapeBuild(op string, opset int64, in []*tensor.Tensor, consts bool, attrs ...*onnx.Attribute) (kernel, error) {
	node := &onnx.Node{OpType: op, Name: "n", Attrs: attrs, Outputs: []string{"y"}}
	info := &nodeInfo{node: node, opset: opset, attrs: map[string]*onnx.Attribute{}}
	for _, a := range attrs {
		info.attrs[a.Name] = a
	}
	for i, t := range in {
		name := ""
		if t != nil {
			name = fmt.Sprintf("in%d", i)
		}
		node.Inputs = append(node.Inputs, name)
		if consts {
			info.consts = append(info.consts, t)
		} else {
			info.consts = append(info.consts, nil)
		}
	}
	f, ok := registry[op]
	if !ok {
		return nil, fmt.Errorf("operator %s not registered", op)
	}
	return f(info)
}

// shapeRunOp builds and runs op twice, once with run-time inputs and once
// with every input constant (the load-time folding path), checks both agree
// and that no input was modified, and returns the outputs.
func shapeRunOp(t *testing.T, op string, opset int64, in []*tensor.Tensor, attrs ...*onnx.Attribute) ([]*tensor.Tensor, error) {
	t.Helper()
	var first []*tensor.Tensor
	for pass, consts := range []bool{false, true} {
		before := make([]*tensor.Tensor, len(in))
		for i, x := range in {
			if x != nil {
				before[i] = x.Clone()
			}
		}
		k, err := shapeBuild(op, opset, in, consts, attrs...)
		var out []*tensor.Tensor
		if err == nil {
			out, err = k(in)
		}
		for i, x := range in {
			if x != nil && !shapeSame(x, before[i]) {
				t.Fatalf("%s modified input %d", op, i)
			}
		}
		if err != nil {
			if pass == 1 && first != nil {
				t.Fatalf("%s: constant inputs fail (%v), run-time inputs do not", op, err)
			}
			return nil, err
		}
		if pass == 0 {
			first = out
			continue
		}
		if len(out) != len(first) {
			t.Fatalf("%s: %d outputs with constant inputs, %d without", op, len(out), len(first))
		}
		for i := range out {
			if !shapeSame(out[i], first[i]) {
				t.Fatalf("%s: constant and run-time inputs give different outputs %v and %v", op, out[i], first[i])
			}
		}
	}
	return first, nil
}

// shapeSame compares dtype, shape and values exactly (NaN equals NaN).
func shapeSame(a, b *tensor.Tensor) bool {
	if a.DType != b.DType || tensor.ShapeString(a.Shape) != tensor.ShapeString(b.Shape) || a.Len() != b.Len() {
		return false
	}
	for i := 0; i < a.Len(); i++ {
		x, y := a.Float64At(i), b.Float64At(i)
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return false
		}
	}
	return a.Validate() == nil
}

// shapeCase is one table row: inputs, attributes, and either the expected
// output or a substring of the expected error.
type shapeCase struct {
	name    string
	opset   int64
	in      []*tensor.Tensor
	attrs   []*onnx.Attribute
	want    *tensor.Tensor
	wantErr string
}

func shapeRunCases(t *testing.T, op string, cases []shapeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opset := c.opset
			if opset == 0 {
				opset = 17
			}
			out, err := shapeRunOp(t, op, opset, c.in, c.attrs...)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !shapeSame(out[0], c.want) {
				t.Fatalf("got %v %v %v, want %v %v %v", out[0].DType, out[0].Shape, shapeValues(out[0]),
					c.want.DType, c.want.Shape, shapeValues(c.want))
			}
		})
	}
}

func shapeValues(t *tensor.Tensor) []float64 {
	v := make([]float64, t.Len())
	for i := range v {
		v[i] = t.Float64At(i)
	}
	return v
}

// shapeSeq is a float32 tensor holding 0, 1, 2, ...
func shapeSeq(dims ...int) *tensor.Tensor {
	t := tensor.New(tensor.Float32, dims)
	for i := range t.F32 {
		t.F32[i] = float32(i)
	}
	return t
}

func shapeI64(v ...int64) *tensor.Tensor { return tensor.FromInt64([]int{len(v)}, v) }

func shapeF32(shape []int, v ...float32) *tensor.Tensor { return tensor.FromFloat32(shape, v) }

func TestShapeOp(t *testing.T) {
	x := shapeSeq(2, 3, 4, 5)
	shapeRunCases(t, "Shape", []shapeCase{
		{name: "all", in: []*tensor.Tensor{x}, want: shapeI64(2, 3, 4, 5)},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 1)}, want: shapeI64()},
		{name: "start_end", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("start", 1), shapeAttrInt("end", -1)}, want: shapeI64(3, 4)},
		{name: "neg_start", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("start", -2)}, want: shapeI64(4, 5)},
		{name: "clamped", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("start", -10), shapeAttrInt("end", 10)}, want: shapeI64(2, 3, 4, 5)},
		{name: "start_after_end", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("start", 3), shapeAttrInt("end", 1)}, want: shapeI64()},
		{name: "bool_input", in: []*tensor.Tensor{tensor.New(tensor.Bool, []int{0, 2})}, want: shapeI64(0, 2)},
		{name: "start_opset13", opset: 13, in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("start", 1)}, wantErr: "opset 15"},
	})
}

func TestFlatten(t *testing.T) {
	x := shapeSeq(2, 3, 4)
	flat := func(a, b int) *tensor.Tensor { return shapeSeq(a, b) }
	shapeRunCases(t, "Flatten", []shapeCase{
		{name: "default", in: []*tensor.Tensor{x}, want: flat(2, 12)},
		{name: "axis0", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", 0)}, want: flat(1, 24)},
		{name: "axis_rank", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", 3)}, want: flat(24, 1)},
		{name: "neg", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", -1)}, want: flat(6, 4)},
		{name: "neg_rank", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", -3)}, want: flat(1, 24)},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 7)}, attrs: []*onnx.Attribute{shapeAttrInt("axis", 0)}, want: shapeF32([]int{1, 1}, 7)},
		{name: "empty", in: []*tensor.Tensor{shapeSeq(0, 3)}, want: shapeSeq(0, 3)},
		{name: "out_of_range", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", 4)}, wantErr: "out of range"},
		{name: "neg_out_of_range", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInt("axis", -4)}, wantErr: "out of range"},
	})
}

func TestReshape(t *testing.T) {
	x := shapeSeq(2, 3, 4)
	shapeRunCases(t, "Reshape", []shapeCase{
		{name: "zero_neg", in: []*tensor.Tensor{x, shapeI64(0, -1)}, want: shapeSeq(2, 12)},
		{name: "neg_first", in: []*tensor.Tensor{x, shapeI64(-1, 2, 3)}, want: shapeSeq(4, 2, 3)},
		{name: "to_scalar", in: []*tensor.Tensor{shapeF32([]int{1, 1}, 5), shapeI64()}, want: shapeF32([]int{}, 5)},
		{name: "from_scalar", in: []*tensor.Tensor{shapeF32([]int{}, 5), shapeI64(-1)}, want: shapeF32([]int{1}, 5)},
		{name: "empty_infer", in: []*tensor.Tensor{shapeSeq(0, 3), shapeI64(-1, 3)}, want: shapeSeq(0, 3)},
		{name: "allowzero", in: []*tensor.Tensor{shapeSeq(0, 3), shapeI64(3, 0)}, attrs: []*onnx.Attribute{shapeAttrInt("allowzero", 1)}, want: shapeSeq(3, 0)},
		{name: "zero_copies", in: []*tensor.Tensor{shapeSeq(0, 3), shapeI64(0, 3)}, want: shapeSeq(0, 3)},
		{name: "mismatch", in: []*tensor.Tensor{x, shapeI64(5, 5)}, wantErr: "cannot reshape"},
		{name: "infer_mismatch", in: []*tensor.Tensor{x, shapeI64(-1, 5)}, wantErr: "cannot reshape"},
		{name: "two_neg", in: []*tensor.Tensor{x, shapeI64(-1, -1)}, wantErr: "more than one -1"},
		{name: "bad_dim", in: []*tensor.Tensor{x, shapeI64(-2, 12)}, wantErr: "invalid dimension"},
		{name: "allowzero_neg", in: []*tensor.Tensor{x, shapeI64(0, -1)}, attrs: []*onnx.Attribute{shapeAttrInt("allowzero", 1)}, wantErr: "both 0 and -1"},
		{name: "zero_past_rank", in: []*tensor.Tensor{shapeSeq(6), shapeI64(2, 0)}, wantErr: "copies dimension 1"},
		{name: "huge", in: []*tensor.Tensor{x, shapeI64(math.MaxInt64, math.MaxInt64, 2)}, wantErr: "cannot reshape"},
		{name: "int32_shape", in: []*tensor.Tensor{x, tensor.FromInt32([]int{1}, []int32{24})}, wantErr: "INT64"},
		{name: "allowzero_opset13", opset: 13, in: []*tensor.Tensor{x, shapeI64(24)}, attrs: []*onnx.Attribute{shapeAttrInt("allowzero", 1)}, wantErr: "opset 14"},
	})
}

func TestConcat(t *testing.T) {
	a := shapeF32([]int{2, 2}, 1, 2, 3, 4)
	b := shapeF32([]int{2, 1}, 5, 6)
	c := shapeF32([]int{1, 2}, 7, 8)
	axis := func(v int64) []*onnx.Attribute { return []*onnx.Attribute{shapeAttrInt("axis", v)} }
	shapeRunCases(t, "Concat", []shapeCase{
		{name: "axis1", in: []*tensor.Tensor{a, b}, attrs: axis(1), want: shapeF32([]int{2, 3}, 1, 2, 5, 3, 4, 6)},
		{name: "neg_axis", in: []*tensor.Tensor{a, b, a}, attrs: axis(-1), want: shapeF32([]int{2, 5}, 1, 2, 5, 1, 2, 3, 4, 6, 3, 4)},
		{name: "axis0", in: []*tensor.Tensor{a, c}, attrs: axis(0), want: shapeF32([]int{3, 2}, 1, 2, 3, 4, 7, 8)},
		{name: "with_empty", in: []*tensor.Tensor{a, shapeSeq(2, 0)}, attrs: axis(1), want: a},
		{name: "int64_1d", in: []*tensor.Tensor{shapeI64(1, 2), shapeI64(-1)}, attrs: axis(0), want: shapeI64(1, 2, -1)},
		{name: "bool", in: []*tensor.Tensor{tensor.FromBool([]int{1}, []bool{true}), tensor.FromBool([]int{2}, []bool{false, true})}, attrs: axis(0),
			want: tensor.FromBool([]int{3}, []bool{true, false, true})},
		{name: "single", in: []*tensor.Tensor{a}, attrs: axis(0), want: a},
		{name: "mismatch", in: []*tensor.Tensor{a, c}, attrs: axis(1), wantErr: "differ outside axis"},
		{name: "rank", in: []*tensor.Tensor{a, shapeSeq(2)}, attrs: axis(0), wantErr: "different ranks"},
		{name: "dtype", in: []*tensor.Tensor{shapeI64(1), shapeSeq(1)}, attrs: axis(0), wantErr: "different datatypes"},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 1), shapeF32([]int{}, 2)}, attrs: axis(0), wantErr: "scalars"},
		{name: "bad_axis", in: []*tensor.Tensor{a, b}, attrs: axis(2), wantErr: "out of range"},
		{name: "no_axis", in: []*tensor.Tensor{a, b}, wantErr: "axis is required"},
	})
}

func TestUnsqueeze(t *testing.T) {
	x := shapeSeq(3, 4)
	shapeRunCases(t, "Unsqueeze", []shapeCase{
		{name: "ends", in: []*tensor.Tensor{x, shapeI64(0, -1)}, want: shapeSeq(1, 3, 4, 1)},
		{name: "mid", in: []*tensor.Tensor{x, shapeI64(1)}, want: shapeSeq(3, 1, 4)},
		{name: "unsorted", in: []*tensor.Tensor{x, shapeI64(3, 0)}, want: shapeSeq(1, 3, 4, 1)},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 2), shapeI64(0)}, want: shapeF32([]int{1}, 2)},
		{name: "int32_axes", in: []*tensor.Tensor{x, tensor.FromInt32([]int{1}, []int32{-2})}, want: shapeSeq(3, 1, 4)},
		{name: "dup", in: []*tensor.Tensor{x, shapeI64(1, -3)}, wantErr: "repeat"},
		{name: "range", in: []*tensor.Tensor{x, shapeI64(3)}, wantErr: "out of range"},
		{name: "axes_attr", in: []*tensor.Tensor{x, shapeI64(0)}, attrs: []*onnx.Attribute{shapeAttrInts("axes", 0)}, wantErr: "not an attribute"},
	})
}

func TestSqueeze(t *testing.T) {
	x := shapeSeq(1, 3, 1, 4)
	shapeRunCases(t, "Squeeze", []shapeCase{
		{name: "axes", in: []*tensor.Tensor{x, shapeI64(0, -2)}, want: shapeSeq(3, 4)},
		{name: "one_axis", in: []*tensor.Tensor{x, shapeI64(2)}, want: shapeSeq(1, 3, 4)},
		{name: "no_axes", in: []*tensor.Tensor{x}, want: shapeSeq(3, 4)},
		{name: "absent_axes", in: []*tensor.Tensor{x, nil}, want: shapeSeq(3, 4)},
		{name: "to_scalar", in: []*tensor.Tensor{shapeF32([]int{1, 1}, 9)}, want: shapeF32([]int{}, 9)},
		{name: "not_one", in: []*tensor.Tensor{x, shapeI64(1)}, wantErr: "not 1"},
		{name: "range", in: []*tensor.Tensor{x, shapeI64(4)}, wantErr: "out of range"},
		{name: "axes_attr", in: []*tensor.Tensor{x}, attrs: []*onnx.Attribute{shapeAttrInts("axes", 0)}, wantErr: "not an attribute"},
	})
}

func TestShapeNeedsInputs(t *testing.T) {
	for _, op := range []string{"Reshape", "Gather", "Slice", "Unsqueeze"} {
		if _, err := shapeBuild(op, 17, []*tensor.Tensor{shapeSeq(2)}, false); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s with one input: error %v, want one about a missing input", op, err)
		}
	}
}

// TestShapeFoldedChain loads a model whose shape arithmetic is folded at
// load time (Shape→Gather→Unsqueeze→Concat of an initializer) and whose
// Reshape then runs on a run-time input.
func TestShapeFoldedChain(t *testing.T) {
	w := shapeSeq(2, 3, 4)
	vi := func(name string, dt onnx.DataType, dims ...int64) *onnx.ValueInfo {
		v := &onnx.ValueInfo{Name: name, ElemType: dt, HasShape: true}
		for _, d := range dims {
			v.Dims = append(v.Dims, onnx.Dim{Value: d, HasValue: true})
		}
		return v
	}
	node := func(op string, in []string, out string, attrs ...*onnx.Attribute) *onnx.Node {
		return &onnx.Node{OpType: op, Name: out, Inputs: in, Outputs: []string{out}, Attrs: attrs}
	}
	g := &onnx.Graph{
		Initializers: []*onnx.TensorProto{onnx.FromTensor("w", w), onnx.FromTensor("i0", tensor.FromInt64([]int{}, []int64{0}))},
		Inputs:       []*onnx.ValueInfo{vi("x", onnx.DataFloat, 24)},
		Outputs:      []*onnx.ValueInfo{vi("y", onnx.DataFloat, 2, 12), vi("z", onnx.DataInt32, 2, 0)},
		Nodes: []*onnx.Node{
			node("Shape", []string{"w"}, "s"),
			node("Gather", []string{"s", "i0"}, "n", shapeAttrInt("axis", 0)),
			node("Unsqueeze", []string{"n", "ax"}, "n1"),
			node("Constant", nil, "ax", shapeAttrInts("value_ints", 0)),
			node("Constant", nil, "m1", shapeAttrInts("value_ints", -1)),
			node("Concat", []string{"n1", "m1"}, "shape", shapeAttrInt("axis", 0)),
			node("Reshape", []string{"x", "shape"}, "y"),
			node("Concat", []string{"n1", "ax"}, "s2", shapeAttrInt("axis", 0)),
			node("ConstantOfShape", []string{"s2"}, "c"), // [2, 0]: empty
			node("Cast", []string{"c"}, "z", shapeAttrInt("to", int64(onnx.DataInt32))),
		},
	}
	// Constant nodes must come before their users.
	g.Nodes[2], g.Nodes[3] = g.Nodes[3], g.Nodes[2]
	b := onnx.Encode(&onnx.Model{IRVersion: 8, OpsetImports: []onnx.OpsetID{{Version: 17}}, Graph: g})
	m, err := LoadBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.prog.steps) != 1 || m.prog.steps[0].op != "Reshape" {
		t.Fatalf("expected only Reshape to run at inference, steps: %v", len(m.prog.steps))
	}
	x := shapeSeq(24)
	out, err := m.Infer(t.Context(), map[string]*tensor.Tensor{"x": x}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := shapeSeq(2, 12); !shapeSame(out["y"], want) {
		t.Fatalf("y = %v %v", out["y"].Shape, shapeValues(out["y"]))
	}
	if want := tensor.FromInt32([]int{2, 0}, []int32{}); !shapeSame(out["z"], want) {
		t.Fatalf("z = %v %v", out["z"].Shape, shapeValues(out["z"]))
	}
	if !reflect.DeepEqual(x.F32, shapeSeq(24).F32) {
		t.Fatal("input modified")
	}
}
