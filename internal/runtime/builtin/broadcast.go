package builtin

import (
	"fmt"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Numpy-style multidirectional broadcasting, shared by the elementwise
// operators and MatMul's batch dimensions.

// mathBroadcastShape returns the shape the given shapes broadcast to:
// aligned on the right, each dimension is either equal across shapes or 1.
func mathBroadcastShape(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			switch o := out[off+i]; {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			default:
				return nil, mathBroadcastError(shapes)
			}
		}
	}
	return out, nil
}

func mathBroadcastError(shapes [][]int) error {
	if len(shapes) == 2 {
		return fmt.Errorf("input shapes %v and %v cannot be broadcast", shapes[0], shapes[1])
	}
	return fmt.Errorf("input shapes %v cannot be broadcast together", shapes)
}

// mathBcast maps a row-major output onto inputs broadcast to it. Adjacent
// dimensions along which every input behaves alike (all contiguous, or all
// repeated) are merged, so the innermost merged dimension is as long a run
// as possible; within a run each input either advances by one element or
// stays on one element (step 1 or 0). Kernels then loop over runs, with
// tight loops inside and no per-element index arithmetic.
type mathBcast struct {
	n       int     // output elements
	inner   int     // run length
	step    []int   // per input: 0 or 1 along a run
	dims    []int   // merged outer dimensions (excluding the run)
	strides [][]int // per input, per outer dimension; 0 where repeated
}

// mathNewBcast plans the iteration of out (from mathBroadcastShape) over
// inputs of the given shapes.
func mathNewBcast(out []int, ins ...[]int) *mathBcast {
	rank := len(out)
	bc := &mathBcast{n: tensor.NumElements(out), step: make([]int, len(ins)), strides: make([][]int, len(ins))}
	// Element strides of every input against every output dimension.
	full := make([][]int, len(ins))
	for k, s := range ins {
		st := make([]int, rank)
		acc := 1
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] != 1 {
				st[rank-len(s)+i] = acc
			}
			acc *= s[i]
		}
		full[k] = st
	}
	// Merge from the innermost dimension outwards, skipping size-1 ones.
	var dims []int
	var merged [][]int // per merged dim, per input stride
	for i := rank - 1; i >= 0; i-- {
		if out[i] == 1 {
			continue
		}
		cur := make([]int, len(ins))
		for k := range ins {
			cur[k] = full[k][i]
		}
		if j := len(dims) - 1; j >= 0 && mathCanMerge(merged[j], cur, dims[j]) {
			dims[j] *= out[i]
			continue
		}
		dims = append(dims, out[i])
		merged = append(merged, cur)
	}
	if len(dims) == 0 { // scalar output, or all dimensions 1
		bc.inner = 1
		for k := range ins {
			bc.step[k] = 1
			bc.strides[k] = []int{}
		}
		return bc
	}
	bc.inner = dims[0]
	for k := range ins {
		bc.step[k] = merged[0][k]
	}
	// Remaining dims, outermost first.
	for j := len(dims) - 1; j >= 1; j-- {
		bc.dims = append(bc.dims, dims[j])
		for k := range ins {
			bc.strides[k] = append(bc.strides[k], merged[j][k])
		}
	}
	return bc
}

// mathCanMerge reports whether an outer dimension with strides outer can
// fold into the inner merged dimension (strides inner, size n): for every
// input it is either repeated in both or continues the inner layout.
func mathCanMerge(inner, outer []int, n int) bool {
	for k := range inner {
		switch {
		case inner[k] == 0 && outer[k] == 0:
		case inner[k] != 0 && outer[k] == inner[k]*n:
		default:
			return false
		}
	}
	return true
}

// runs calls fn for every run in output order with the run's output offset
// and each input's offset at its start. offs is reused between calls.
func (bc *mathBcast) runs(fn func(o int, offs []int)) {
	if bc.n == 0 {
		return
	}
	offs := make([]int, len(bc.step))
	idx := make([]int, len(bc.dims))
	for o := 0; o < bc.n; o += bc.inner {
		fn(o, offs)
		for ax := len(idx) - 1; ax >= 0; ax-- {
			idx[ax]++
			for k := range offs {
				offs[k] += bc.strides[k][ax]
			}
			if idx[ax] < bc.dims[ax] {
				break
			}
			for k := range offs {
				offs[k] -= bc.strides[k][ax] * bc.dims[ax]
			}
			idx[ax] = 0
		}
	}
}
