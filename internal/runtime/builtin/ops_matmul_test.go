package builtin

import (
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// mathMatMulRef is numpy matmul by index arithmetic, in float64.
func mathMatMulRef(a, b *tensor.Tensor) *tensor.Tensor {
	as, bs := a.Shape, b.Shape
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	batch, _ := mathBroadcastShape(ab, bb)
	shape := append([]int(nil), batch...)
	if len(a.Shape) > 1 {
		shape = append(shape, m)
	}
	if len(b.Shape) > 1 {
		shape = append(shape, n)
	}
	out := tensor.New(a.DType, shape)
	for bi := 0; bi < tensor.NumElements(batch); bi++ {
		idx := mathUnravel(bi, batch)
		ao, bo := mathRavelBroadcast(idx, ab)*m*k, mathRavelBroadcast(idx, bb)*k*n
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for p := 0; p < k; p++ {
					s += a.Float64At(ao+i*k+p) * b.Float64At(bo+p*n+j)
				}
				mathSetFrom(out, (bi*m+i)*n+j, s)
			}
		}
	}
	return out
}

func TestMathMatMul(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	pairs := [][2][]int{
		{{3, 4}, {4, 5}}, {{2, 3, 4}, {2, 4, 5}}, {{2, 3, 4}, {4, 5}}, {{2, 1, 3, 4}, {3, 4, 2}},
		{{4}, {4, 5}}, {{3, 4}, {4}}, {{4}, {4}}, {{2, 3, 4}, {4}}, {{5}, {2, 5, 3}},
		{{1, 7}, {7, 13}}, {{9, 33}, {33, 20}}, {{3, 0}, {0, 2}}, {{0, 3}, {3, 2}}, {{4, 3}, {1, 3, 1}},
	}
	for _, p := range pairs {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64, tensor.Int32, tensor.Int64} {
			a, b := mathRandTensor(r, dt, p[0]), mathRandTensor(r, dt, p[1])
			want := mathMatMulRef(a, b)
			tol := 1e-4
			if dt != tensor.Float32 {
				tol = 1e-12
			}
			for _, constB := range []bool{false, true} {
				n := mathNode("MatMul", 13, 2, 1, nil)
				if constB {
					n.consts[1] = b
				}
				out, err := mathRun(t, n, a, b)
				if err != nil {
					t.Fatalf("%v %v %v: %v", dt, p[0], p[1], err)
				}
				mathExpect(t, fmt.Sprintf("MatMul %v %v %v const=%v", dt, p[0], p[1], constB), out[0], want, tol)
			}
		}
	}
	// Hand-checked: [[1,2],[3,4]]·[[5,6],[7,8]].
	out, err := mathRun(t, mathNode("MatMul", 13, 2, 1, nil), mathF32([]int{2, 2}, 1, 2, 3, 4), mathF32([]int{2, 2}, 5, 6, 7, 8))
	if err != nil {
		t.Fatal(err)
	}
	mathExpect(t, "hand", out[0], mathF32([]int{2, 2}, 19, 22, 43, 50), 0)

	bad := []struct {
		a, b *tensor.Tensor
		want string
	}{
		{mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), "do not match"},
		{mathF32([]int{2, 2, 1}, 1, 2, 3, 4), mathF32([]int{3, 1, 2}, 1, 2, 3, 4, 5, 6), "cannot be broadcast"},
		{mathF32(nil, 1), mathF32([]int{1}, 1), "rank"},
		{mathF32([]int{1}, 1), tensor.FromInt32([]int{1}, []int32{1}), "differ"},
		{tensor.FromBool([]int{1}, []bool{true}), tensor.FromBool([]int{1}, []bool{true}), "not supported"},
	}
	for _, c := range bad {
		if _, err := mathRun(t, mathNode("MatMul", 13, 2, 1, nil), c.a, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MatMul %v %v: %v, want %q", c.a.Shape, c.b.Shape, err, c.want)
		}
	}
}

// mathGemmRef is Gemm by the formula, in float64.
func mathGemmRef(a, b, c *tensor.Tensor, ta, tb bool, alpha, beta float64) *tensor.Tensor {
	m, k := a.Shape[0], a.Shape[1]
	if ta {
		m, k = k, m
	}
	n := b.Shape[1]
	if tb {
		n = b.Shape[0]
	}
	out := tensor.New(a.DType, []int{m, n})
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				ai, bi := i*k+p, p*n+j
				if ta {
					ai = p*m + i
				}
				if tb {
					bi = j*k + p
				}
				s += a.Float64At(ai) * b.Float64At(bi)
			}
			v := alpha * s
			if c != nil {
				v += beta * c.Float64At(mathRavelBroadcast([]int{i, j}, c.Shape))
			}
			mathSetFrom(out, i*n+j, v)
		}
	}
	return out
}

func TestMathGemm(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	type gc struct {
		m, n, k     int
		ta, tb      bool
		alpha, beta float32
		cShape      []int // nil: no C
	}
	cases := []gc{
		{3, 5, 4, false, true, 0.5, 2, []int{5}},
		{3, 5, 4, false, false, 1, 1, nil},
		{3, 5, 4, true, true, 1.5, 1, []int{3, 5}},
		{3, 2, 4, false, false, 1, 0.5, []int{3, 1}},
		{1, 16, 4, false, true, 1, 1, []int{1, 16}},
		{7, 9, 300, true, false, -1, 0, []int{9}},
		{2, 3, 2, false, false, 1, 1, []int{}},
		{33, 70, 19, true, true, 2, 3, []int{1, 1}},
	}
	for _, c := range cases {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.Float64} {
			as, bs := []int{c.m, c.k}, []int{c.k, c.n}
			if c.ta {
				as = []int{c.k, c.m}
			}
			if c.tb {
				bs = []int{c.n, c.k}
			}
			a, b := mathRandTensor(r, dt, as), mathRandTensor(r, dt, bs)
			var cm *tensor.Tensor
			nIn := 2
			if c.cShape != nil {
				cm, nIn = mathRandTensor(r, dt, c.cShape), 3
			}
			want := mathGemmRef(a, b, cm, c.ta, c.tb, float64(c.alpha), float64(c.beta))
			attrs := []*onnx.Attribute{mathAttrF("alpha", c.alpha), mathAttrF("beta", c.beta)}
			if c.ta {
				attrs = append(attrs, mathAttrI("transA", 1))
			}
			if c.tb {
				attrs = append(attrs, mathAttrI("transB", 1))
			}
			tol := 1e-4 // float32 sums with cancellation
			if dt == tensor.Float64 {
				tol = 1e-12
			}
			for _, constB := range []bool{false, true} {
				n := mathNode("Gemm", 13, nIn, 1, attrs)
				if constB {
					n.consts[1] = b
				}
				in := []*tensor.Tensor{a, b, cm}[:nIn]
				out, err := mathRun(t, n, in...)
				if err != nil {
					t.Fatalf("%+v %v: %v", c, dt, err)
				}
				mathExpect(t, fmt.Sprintf("Gemm %+v %v const=%v", c, dt, constB), out[0], want, tol)
			}
		}
	}
	a, b := mathF32([]int{2, 3}, 1, 2, 3, 4, 5, 6), mathF32([]int{3, 2}, 1, 2, 3, 4, 5, 6)
	bad := []struct {
		in   []*tensor.Tensor
		want string
	}{
		{[]*tensor.Tensor{a, a}, "do not match"},
		{[]*tensor.Tensor{mathF32([]int{6}, 1, 2, 3, 4, 5, 6), b}, "matrices"},
		{[]*tensor.Tensor{a, b, mathF32([]int{3}, 1, 2, 3)}, "cannot be broadcast"},
		{[]*tensor.Tensor{a, b, mathF32([]int{1, 2, 2}, 1, 2, 3, 4)}, "cannot be broadcast"},
		{[]*tensor.Tensor{tensor.FromInt32([]int{1, 1}, []int32{1}), tensor.FromInt32([]int{1, 1}, []int32{1})}, "not supported"},
		{[]*tensor.Tensor{a, tensor.FromFloat64([]int{3, 2}, make([]float64, 6))}, "differ"},
	}
	for _, c := range bad {
		if _, err := mathRun(t, mathNode("Gemm", 13, len(c.in), 1, nil), c.in...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Gemm %v: %v, want %q", c.in[0].Shape, err, c.want)
		}
	}
	if _, err := registry["Gemm"](mathNode("Gemm", 13, 2, 1, nil, nil, tensor.FromInt64([]int{1, 1}, []int64{1}))); err == nil {
		t.Error("INT64 constant B accepted at load")
	}
}

// TestMathMatMulConcurrent shares one kernel with a packed constant B
// across goroutines (run with -race).
func TestMathMatMulConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	w := mathRandTensor(r, tensor.Float32, []int{32, 24})
	k, err := registry["MatMul"](mathNode("MatMul", 13, 2, 1, nil, nil, w))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		x := mathRandTensor(r, tensor.Float32, []int{g + 1, 32})
		want := mathMatMulRef(x, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				out, err := k([]*tensor.Tensor{x, w})
				if err != nil {
					t.Error(err)
					return
				}
				for j, v := range want.F32 {
					if d := out[0].F32[j] - v; d > 1e-4 || d < -1e-4 {
						t.Errorf("goroutine result [%d] = %v, want %v", j, out[0].F32[j], v)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
