package builtin

import (
	"math/rand/v2"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// BenchmarkConv times the Conv kernel on a 1x16x32x32 input with 3x3
// kernels and pad 1: a dense layer of 32 filters (im2col + gemm), a
// depthwise one (group 16, direct taps) and a 1x1 pointwise one.
func BenchmarkConv(b *testing.B) {
	cases := []struct {
		name     string
		m, group int
		k        int64
	}{
		{"3x3_16to32", 32, 1, 3},
		{"depthwise_3x3_16", 16, 16, 3},
		{"pointwise_16to32", 32, 1, 1},
	}
	r := rand.New(rand.NewPCG(7, 8))
	x := tensor.FromFloat32([]int{1, 16, 32, 32}, cnnRand(r, 16*32*32))
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ws := []int{tc.m, 16 / tc.group, int(tc.k), int(tc.k)}
			w := tensor.FromFloat32(ws, cnnRand(r, tensor.NumElements(ws)))
			bias := tensor.FromFloat32([]int{tc.m}, cnnRand(r, tc.m))
			p := tc.k / 2
			attrs := []*onnx.Attribute{cnnAInts("pads", p, p, p, p), cnnAInt("group", int64(tc.group)), cnnAInts("kernel_shape", tc.k, tc.k)}
			k, err := newConv(cnnNode("Conv", 17, []string{"x", "w", "b"}, []string{"y"}, attrs, nil, w, bias))
			if err != nil {
				b.Fatal(err)
			}
			in := []*tensor.Tensor{x, w, bias}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
