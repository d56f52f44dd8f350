package main

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
)

// tensorSpec is one tensor of a model: its name and shape (float32).
type tensorSpec struct {
	Name  string
	Shape []int
}

func (t tensorSpec) bytes() int64 {
	n := int64(4)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// tensorRNG seeds a generator from the run's seed and the tensor's
// identity, so a tensor's values do not depend on what came before it.
func tensorRNG(seed uint64, parts ...string) *rand.Rand {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// writeWeights writes n bytes of float32 values drawn from a normal
// distribution with the spread of trained weights (std 0.02), a block at a
// time, so no tensor is ever held whole.
func writeWeights(w io.Writer, rng *rand.Rand, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		for i := 0; i+4 <= len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

// weightBytes returns n bytes of weights in memory, for ONNX initializers,
// which the ONNX encoder needs whole.
func weightBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := 0; i+4 <= len(b); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
	}
	return b
}
