package builtin

import (
	"slices"
	"strings"
	"testing"
)

func TestMathBroadcastShape(t *testing.T) {
	cases := []struct {
		a, b, want []int
		err        bool
	}{
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}, false},
		{[]int{2, 3}, []int{}, []int{2, 3}, false},
		{[]int{}, []int{}, []int{}, false},
		{[]int{2, 3, 4}, []int{3, 1}, []int{2, 3, 4}, false},
		{[]int{2, 1, 4}, []int{3, 1}, []int{2, 3, 4}, false},
		{[]int{1}, []int{0}, []int{0}, false},
		{[]int{2, 3}, []int{1, 1, 1}, []int{1, 2, 3}, false},
		{[]int{2, 3}, []int{2}, nil, true},
		{[]int{0}, []int{2}, nil, true},
	}
	for _, c := range cases {
		got, err := mathBroadcastShape(c.a, c.b)
		if c.err {
			if err == nil || !strings.Contains(err.Error(), "cannot be broadcast") {
				t.Errorf("%v %v: err %v, want broadcast error", c.a, c.b, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%v %v: %v %v, want %v", c.a, c.b, got, err, c.want)
		}
	}
}

func TestMathBcastMerge(t *testing.T) {
	cases := []struct {
		out, a, b []int
		inner     int
		dims      []int
		step      []int
	}{
		// Bias over the last axis: one run per row, the rows merged.
		{[]int{2, 3, 4}, []int{2, 3, 4}, []int{4}, 4, []int{6}, []int{1, 1}},
		// Per-channel bias on NCHW: runs over H*W.
		{[]int{2, 3, 4, 5}, []int{2, 3, 4, 5}, []int{3, 1, 1}, 20, []int{2, 3}, []int{1, 0}},
		// Outer product: a column against a row.
		{[]int{3, 4}, []int{3, 1}, []int{1, 4}, 4, []int{3}, []int{0, 1}},
		// Scalar output.
		{[]int{}, []int{}, []int{1}, 1, nil, []int{1, 1}},
	}
	for _, c := range cases {
		bc := mathNewBcast(c.out, c.a, c.b)
		if bc.inner != c.inner || !slices.Equal(bc.dims, c.dims) || !slices.Equal(bc.step, c.step) {
			t.Errorf("%v %v→%v: inner %d dims %v step %v, want %d %v %v", c.a, c.b, c.out, bc.inner, bc.dims, bc.step, c.inner, c.dims, c.step)
		}
	}
}

// TestMathBcastRuns checks the run offsets against direct index arithmetic
// for three inputs.
func TestMathBcastRuns(t *testing.T) {
	shapes := [][]int{{2, 1, 4}, {3, 1}, {1, 3, 4}}
	out, err := mathBroadcastShape(shapes...)
	if err != nil {
		t.Fatal(err)
	}
	bc := mathNewBcast(out, shapes...)
	seen := 0
	bc.runs(func(o int, offs []int) {
		for j := 0; j < bc.inner; j++ {
			idx := mathUnravel(o+j, out)
			for k, s := range shapes {
				if want := mathRavelBroadcast(idx, s); offs[k]+j*bc.step[k] != want {
					t.Fatalf("output %d input %d: offset %d, want %d", o+j, k, offs[k]+j*bc.step[k], want)
				}
			}
			seen++
		}
	})
	if seen != 24 {
		t.Fatalf("visited %d elements, want 24", seen)
	}
}

// mathUnravel turns a flat index into a multi-index of shape.
func mathUnravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return idx
}

// mathRavelBroadcast is the flat index in an input of shape s of the
// element that broadcasts to output multi-index idx.
func mathRavelBroadcast(idx, s []int) int {
	off := len(idx) - len(s)
	flat := 0
	for d, n := range s {
		v := idx[off+d]
		if n == 1 {
			v = 0
		}
		flat = flat*n + v
	}
	return flat
}
