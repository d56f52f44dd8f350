package builtin

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestGather(t *testing.T) {
	x := shapeSeq(3, 4) // rows 0..3, 4..7, 8..11
	axis := func(v int64) []*onnx.Attribute { return []*onnx.Attribute{shapeAttrInt("axis", v)} }
	shapeRunCases(t, "Gather", []shapeCase{
		{name: "rows", in: []*tensor.Tensor{x, shapeI64(2, 0)}, want: shapeF32([]int{2, 4}, 8, 9, 10, 11, 0, 1, 2, 3)},
		{name: "scalar_index", in: []*tensor.Tensor{x, tensor.FromInt64([]int{}, []int64{1})}, want: shapeF32([]int{4}, 4, 5, 6, 7)},
		{name: "negative", in: []*tensor.Tensor{x, tensor.FromInt32([]int{2}, []int32{-1, -3})}, want: shapeF32([]int{2, 4}, 8, 9, 10, 11, 0, 1, 2, 3)},
		{name: "axis1_2d", in: []*tensor.Tensor{x, tensor.FromInt64([]int{2, 2}, []int64{0, 2, 3, 1})}, attrs: axis(1),
			want: shapeF32([]int{3, 2, 2}, 0, 2, 3, 1, 4, 6, 7, 5, 8, 10, 11, 9)},
		{name: "neg_axis_scalar", in: []*tensor.Tensor{x, tensor.FromInt64([]int{}, []int64{-1})}, attrs: axis(-1), want: shapeF32([]int{3}, 3, 7, 11)},
		{name: "shape_vector", in: []*tensor.Tensor{shapeI64(2, 3, 4), tensor.FromInt64([]int{}, []int64{0})}, want: tensor.FromInt64([]int{}, []int64{2})},
		{name: "empty_indices", in: []*tensor.Tensor{x, shapeI64()}, want: shapeSeq(0, 4)},
		{name: "bool", in: []*tensor.Tensor{tensor.FromBool([]int{3}, []bool{true, false, true}), shapeI64(1, 2)},
			want: tensor.FromBool([]int{2}, []bool{false, true})},
		{name: "range", in: []*tensor.Tensor{x, shapeI64(3)}, wantErr: "out of range"},
		{name: "neg_range", in: []*tensor.Tensor{x, shapeI64(-4)}, wantErr: "out of range"},
		{name: "empty_axis", in: []*tensor.Tensor{shapeSeq(0, 2), shapeI64(0)}, wantErr: "out of range"},
		{name: "float_indices", in: []*tensor.Tensor{x, shapeSeq(1)}, wantErr: "INT32 or INT64"},
		{name: "bad_axis", in: []*tensor.Tensor{x, shapeI64(0)}, attrs: axis(2), wantErr: "out of range"},
		{name: "scalar_data", in: []*tensor.Tensor{shapeF32([]int{}, 1), shapeI64(0)}, wantErr: "scalar"},
	})
}

func TestSlice(t *testing.T) {
	x := shapeSeq(4, 5)
	const hi, lo = math.MaxInt64, math.MinInt64
	in := func(ts ...*tensor.Tensor) []*tensor.Tensor { return append([]*tensor.Tensor{x}, ts...) }
	shapeRunCases(t, "Slice", []shapeCase{
		{name: "steps_int64max", in: in(shapeI64(1, 0), shapeI64(3, hi), shapeI64(0, 1), shapeI64(1, 2)),
			want: shapeF32([]int{2, 3}, 5, 7, 9, 10, 12, 14)},
		{name: "negative_steps", in: in(shapeI64(-1, 3), shapeI64(lo, 0), shapeI64(1, 0), shapeI64(-1, -2)),
			want: shapeF32([]int{2, 5}, 19, 18, 17, 16, 15, 9, 8, 7, 6, 5)},
		{name: "default_axes", in: in(shapeI64(1, -100), shapeI64(-1, 3)), want: shapeF32([]int{2, 3}, 5, 6, 7, 10, 11, 12)},
		{name: "rows_contiguous", in: in(shapeI64(1), shapeI64(3)), want: shapeF32([]int{2, 5}, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)},
		{name: "neg_axis_step", in: in(shapeI64(0), shapeI64(1000000000), shapeI64(-1), shapeI64(3)),
			want: shapeF32([]int{4, 2}, 0, 3, 5, 8, 10, 13, 15, 18)},
		{name: "int32", in: in(tensor.FromInt32([]int{1}, []int32{2}), tensor.FromInt32([]int{1}, []int32{4}), tensor.FromInt32([]int{1}, []int32{1})),
			want: shapeF32([]int{4, 2}, 2, 3, 7, 8, 12, 13, 17, 18)},
		{name: "absent_axes", in: in(shapeI64(3), shapeI64(hi), nil, shapeI64(1)), want: shapeF32([]int{1, 5}, 15, 16, 17, 18, 19)},
		{name: "whole", in: in(shapeI64(0, lo), shapeI64(hi, hi)), want: x},
		{name: "empty_result", in: in(shapeI64(3), shapeI64(1)), want: shapeSeq(0, 5)},
		{name: "empty_reverse", in: in(shapeI64(1), shapeI64(3), shapeI64(0), shapeI64(-1)), want: shapeSeq(0, 5)},
		{name: "step_int64min", in: in(shapeI64(hi), shapeI64(lo), shapeI64(1), shapeI64(lo)), want: shapeF32([]int{4, 1}, 4, 9, 14, 19)},
		{name: "step_int64max", in: in(shapeI64(0), shapeI64(hi), shapeI64(0), shapeI64(hi)), want: shapeF32([]int{1, 5}, 0, 1, 2, 3, 4)},
		{name: "empty_input_reverse", in: []*tensor.Tensor{shapeSeq(0, 2), shapeI64(-1), shapeI64(lo), shapeI64(0), shapeI64(-1)}, want: shapeSeq(0, 2)},
		{name: "int64_data", in: []*tensor.Tensor{shapeI64(2, 3, 4, 5), shapeI64(1), shapeI64(-1)}, want: shapeI64(3, 4)},
		{name: "zero_step", in: in(shapeI64(0), shapeI64(1), shapeI64(0), shapeI64(0)), wantErr: "step"},
		{name: "dup_axis", in: in(shapeI64(0, 0), shapeI64(1, 1), shapeI64(0, -2)), wantErr: "twice"},
		{name: "lengths", in: in(shapeI64(0, 0), shapeI64(1)), wantErr: "same length"},
		{name: "bad_axis", in: in(shapeI64(0), shapeI64(1), shapeI64(2)), wantErr: "out of range"},
		{name: "float_starts", in: in(shapeSeq(1), shapeI64(1)), wantErr: "INT32 or INT64"},
	})
}

// sliceNaive is a reference Slice: it enumerates output indices one by one.
func sliceNaive(x *tensor.Tensor, first, step, count []int) *tensor.Tensor {
	out := tensor.New(x.DType, count)
	st := shapeStrides(x.Shape)
	idx := make([]int, len(count))
	for o := range out.F32 {
		rem, off := o, 0
		for a := len(count) - 1; a >= 0; a-- {
			idx[a] = rem % count[a]
			rem /= count[a]
			off += (first[a] + idx[a]*step[a]) * st[a]
		}
		out.F32[o] = x.F32[off]
	}
	return out
}

// TestSliceRandom compares Slice with the naive reference on random shapes,
// bounds (including out-of-range ones) and steps.
func TestSliceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 500; iter++ {
		r := 1 + rng.IntN(4)
		dims := make([]int, r)
		for i := range dims {
			dims[i] = 1 + rng.IntN(5)
		}
		x := shapeSeq(dims...)
		var starts, ends, axes, steps []int64
		first, step, count := make([]int, r), make([]int, r), append([]int(nil), dims...)
		for a := range step {
			step[a] = 1
		}
		for _, a := range rng.Perm(r)[:1+rng.IntN(r)] {
			s, e := int64(rng.IntN(16)-8), int64(rng.IntN(16)-8)
			st := int64(rng.IntN(7) - 3)
			if st == 0 {
				st = 1
			}
			starts, ends, steps = append(starts, s), append(ends, e), append(steps, st)
			axes = append(axes, int64(a-r*rng.IntN(2))) // sometimes negative
			f, c := sliceClamp(s, e, st, int64(dims[a]))
			first[a], step[a], count[a] = int(f), int(st), int(c)
		}
		k, err := shapeBuild("Slice", 17, []*tensor.Tensor{x, shapeI64(starts...), shapeI64(ends...), shapeI64(axes...), shapeI64(steps...)}, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := k([]*tensor.Tensor{x, shapeI64(starts...), shapeI64(ends...), shapeI64(axes...), shapeI64(steps...)})
		if err != nil {
			t.Fatal(err)
		}
		if want := sliceNaive(x, first, step, count); !shapeSame(out[0], want) {
			t.Fatalf("dims %v starts %v ends %v axes %v steps %v: got %v %v, want %v %v",
				dims, starts, ends, axes, steps, out[0].Shape, out[0].F32, want.Shape, want.F32)
		}
	}
}

func TestSliceClamp(t *testing.T) {
	// Expected values follow the ONNX Slice reference (numpy semantics).
	for _, c := range []struct{ start, end, step, d, first, count int64 }{
		{0, math.MaxInt64, 1, 5, 0, 5},
		{-1, math.MinInt64, -1, 5, 4, 5},
		{math.MaxInt64, math.MinInt64, -2, 5, 4, 3},
		{-100, 100, 3, 5, 0, 2},
		{3, 0, -2, 4, 3, 2},
		{2, 2, 1, 5, 2, 0},
		{0, 5, math.MaxInt64, 5, 0, 1},
		{4, -6, math.MinInt64, 5, 4, 1},
		{0, -1, -1, 5, 0, 0},
	} {
		f, n := sliceClamp(c.start, c.end, c.step, c.d)
		if f != c.first || n != c.count {
			t.Errorf("sliceClamp(%d, %d, %d, %d) = %d, %d; want %d, %d", c.start, c.end, c.step, c.d, f, n, c.first, c.count)
		}
	}
}

func TestTranspose(t *testing.T) {
	x := shapeSeq(2, 3)
	perm := func(p ...int64) []*onnx.Attribute { return []*onnx.Attribute{shapeAttrInts("perm", p...)} }
	shapeRunCases(t, "Transpose", []shapeCase{
		{name: "2d", in: []*tensor.Tensor{x}, want: shapeF32([]int{3, 2}, 0, 3, 1, 4, 2, 5)},
		{name: "perm_3d", in: []*tensor.Tensor{shapeSeq(2, 1, 3)}, attrs: perm(2, 0, 1), want: shapeF32([]int{3, 2, 1}, 0, 3, 1, 4, 2, 5)},
		{name: "identity", in: []*tensor.Tensor{x}, attrs: perm(0, 1), want: x},
		{name: "scalar", in: []*tensor.Tensor{shapeF32([]int{}, 3)}, want: shapeF32([]int{}, 3)},
		{name: "empty", in: []*tensor.Tensor{shapeSeq(0, 3)}, want: shapeSeq(3, 0)},
		{name: "int64", in: []*tensor.Tensor{tensor.FromInt64([]int{2, 2}, []int64{1, 2, 3, 4})}, want: tensor.FromInt64([]int{2, 2}, []int64{1, 3, 2, 4})},
		{name: "bool", in: []*tensor.Tensor{tensor.FromBool([]int{1, 2}, []bool{true, false})}, want: tensor.FromBool([]int{2, 1}, []bool{true, false})},
		{name: "rank_mismatch", in: []*tensor.Tensor{x}, attrs: perm(0, 1, 2), wantErr: "does not fit"},
		{name: "not_perm", in: []*tensor.Tensor{x}, attrs: perm(0, 0), wantErr: "not a permutation"},
	})
}

// transposeNaive is a reference Transpose over float32.
func transposeNaive(x *tensor.Tensor, perm []int) *tensor.Tensor {
	r := len(perm)
	outShape := make([]int, r)
	for i, a := range perm {
		outShape[i] = x.Shape[a]
	}
	out := tensor.New(tensor.Float32, outShape)
	st := shapeStrides(x.Shape)
	for o := range out.F32 {
		rem, off := o, 0
		for i := r - 1; i >= 0; i-- {
			off += (rem % outShape[i]) * st[perm[i]]
			rem /= outShape[i]
		}
		out.F32[o] = x.F32[off]
	}
	return out
}

// TestTransposeRandom checks every path (merged, 2-D tiles, batched,
// strided with and without contiguous blocks) against the reference.
func TestTransposeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 500; iter++ {
		r := 1 + rng.IntN(5)
		dims := make([]int, r)
		for i := range dims {
			dims[i] = 1 + rng.IntN(4)
		}
		if iter%50 == 0 { // large enough for several 32×32 tiles
			dims = []int{1 + rng.IntN(3), 70, 45}[:min(r, 3)]
			r = len(dims)
		}
		x := shapeSeq(dims...)
		p := rng.Perm(r)
		p64 := make([]int64, r)
		for i, v := range p {
			p64[i] = int64(v)
		}
		out, err := shapeRunOp(t, "Transpose", 17, []*tensor.Tensor{x}, shapeAttrInts("perm", p64...))
		if err != nil {
			t.Fatal(err)
		}
		if want := transposeNaive(x, p); !shapeSame(out[0], want) {
			t.Fatalf("dims %v perm %v: got %v, want %v", dims, p, out[0].F32, want.F32)
		}
	}
}

func BenchmarkTransposeNCHWtoNHWC(b *testing.B) {
	x := shapeSeq(8, 64, 56, 56)
	k, _ := shapeBuild("Transpose", 17, []*tensor.Tensor{x}, false, shapeAttrInts("perm", 0, 2, 3, 1))
	for b.Loop() {
		_, _ = k([]*tensor.Tensor{x})
	}
}

func BenchmarkGatherRows(b *testing.B) {
	x := shapeSeq(1000, 256)
	idx := tensor.New(tensor.Int64, []int{64, 8})
	for i := range idx.I64 {
		idx.I64[i] = int64(i*37) % 1000
	}
	k, _ := shapeBuild("Gather", 17, []*tensor.Tensor{x, idx}, false)
	for b.Loop() {
		_, _ = k([]*tensor.Tensor{x, idx})
	}
}

// TestShapeFamilyConcurrent runs kernels built once from many goroutines, as
// concurrent requests do (meaningful under -race).
func TestShapeFamilyConcurrent(t *testing.T) {
	x := shapeSeq(3, 4, 5)
	cases := []struct {
		op    string
		in    []*tensor.Tensor
		attrs []*onnx.Attribute
	}{
		{"Transpose", []*tensor.Tensor{x}, []*onnx.Attribute{shapeAttrInts("perm", 2, 0, 1)}},
		{"Slice", []*tensor.Tensor{x, shapeI64(1, -1), shapeI64(3, 0), shapeI64(0, 2), shapeI64(1, -2)}, nil},
		{"Gather", []*tensor.Tensor{x, shapeI64(2, -1)}, []*onnx.Attribute{shapeAttrInt("axis", 1)}},
		{"Concat", []*tensor.Tensor{x, x}, []*onnx.Attribute{shapeAttrInt("axis", 1)}},
		{"ArgMax", []*tensor.Tensor{x}, []*onnx.Attribute{shapeAttrInt("axis", 2)}},
	}
	for _, c := range cases {
		k, err := shapeBuild(c.op, 17, c.in, true, c.attrs...)
		if err != nil {
			t.Fatal(err)
		}
		want, err := k(c.in)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 8)
		for range 8 {
			go func() {
				for range 50 {
					got, err := k(c.in)
					if err == nil && !shapeSame(got[0], want[0]) {
						err = fmt.Errorf("%s: result differs between calls", c.op)
					}
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range 8 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}
