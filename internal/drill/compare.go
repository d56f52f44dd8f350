package drill

import (
	"fmt"
	"math"
	"slices"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Float tolerance of a check: answers computed on other hardware or by
// another build of a runtime may differ in the last bits of a float, never
// in a label.
const (
	relTolerance = 1e-4
	absTolerance = 1e-6
)

// compareOutputs says how got differs from want, or nil when it does not.
// Every expected output must be there, once, and nothing else.
func compareOutputs(want []namedTensor, got []oip.ResponseOutput) error {
	byName := make(map[string]*oip.ResponseOutput, len(got))
	for i := range got {
		if _, dup := byName[got[i].Name]; dup {
			return fmt.Errorf("output %s given twice", got[i].Name)
		}
		byName[got[i].Name] = &got[i]
	}
	for _, w := range want {
		g, ok := byName[w.name]
		if !ok {
			return fmt.Errorf("output %s missing", w.name)
		}
		delete(byName, w.name)
		if err := compareOutput(w, g); err != nil {
			return err
		}
	}
	for name := range byName {
		return fmt.Errorf("unexpected output %s", name)
	}
	return nil
}

func compareOutput(w namedTensor, g *oip.ResponseOutput) error {
	if g.Datatype != w.t.DType.String() {
		return fmt.Errorf("output %s datatype %s, want %s", w.name, g.Datatype, w.t.DType)
	}
	shape := make([]int, len(g.Shape))
	for i, d := range g.Shape {
		shape[i] = int(d)
	}
	if len(g.Shape) != len(w.t.Shape) || !slices.Equal(shape, w.t.Shape) {
		return fmt.Errorf("output %s shape %v, want %s", w.name, g.Shape, tensor.ShapeString(w.t.Shape))
	}
	t, err := g.Tensor()
	if err != nil {
		return err
	}
	for i := 0; i < w.t.Len(); i++ {
		if !sameValue(w.t, t, i) {
			return fmt.Errorf("output %s[%d] = %s, want %s", w.name, i, valueString(t, i), valueString(w.t, i))
		}
	}
	return nil
}

// sameValue compares element i of two tensors of the same datatype.
func sameValue(want, got *tensor.Tensor, i int) bool {
	switch want.DType {
	case tensor.Float32:
		return closeEnough(float64(want.F32[i]), float64(got.F32[i]))
	case tensor.Float64:
		return closeEnough(want.F64[i], got.F64[i])
	case tensor.Int32:
		return want.I32[i] == got.I32[i]
	case tensor.Int64:
		return want.I64[i] == got.I64[i]
	case tensor.Bool:
		return want.Bool[i] == got.Bool[i]
	}
	return false
}

func closeEnough(want, got float64) bool {
	diff := math.Abs(want - got)
	return diff <= absTolerance || diff <= relTolerance*math.Max(math.Abs(want), math.Abs(got))
}

func valueString(t *tensor.Tensor, i int) string {
	switch t.DType {
	case tensor.Float32:
		return fmt.Sprint(t.F32[i])
	case tensor.Float64:
		return fmt.Sprint(t.F64[i])
	case tensor.Bool:
		return fmt.Sprint(t.Bool[i])
	}
	return fmt.Sprint(int64(t.Float64At(i)))
}
