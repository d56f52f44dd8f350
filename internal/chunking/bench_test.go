package chunking

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkChunker measures chunking throughput on float32 weights with
// the default sizes: go test -run '^$' -bench Chunker ./internal/chunking/
func BenchmarkChunker(b *testing.B) {
	data := normalFloats(rand.New(rand.NewPCG(13, 13)), 16<<20) // 64 MiB
	var bounds []int64
	for off := int64(3 << 20); off < int64(len(data)); off += 4 << 20 { // a tensor every 4 MiB
		bounds = append(bounds, off)
	}
	for _, bc := range []struct {
		name   string
		bounds []int64
	}{{"plain", nil}, {"model-aware", bounds}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c := New(bytes.NewReader(data), bc.bounds, DefaultOptions)
				for {
					if _, err := c.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkBoundaries measures reading the tensor table of a model file of
// 1000 tensors (headers only: the time does not grow with tensor sizes).
func BenchmarkBoundaries(b *testing.B) {
	rng := rand.New(rand.NewPCG(14, 14))
	ts := make([]testTensor, 1000)
	for i := range ts {
		ts[i] = testTensor{name: "layers." + string(rune('a'+i%26)) + ".weight" + string(rune('0'+i%10)) + string(rune('a'+i/26)), shape: []int{64}, data: normalFloats(rng, 64)}
	}
	files := map[string][]byte{"model.safetensors": safetensorsFile(b, ts, nil), "model.onnx": onnxFile(ts, "")}
	for name, file := range files {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if bs, err := Boundaries(bytes.NewReader(file), int64(len(file)), name); err != nil || len(bs) < 1000 {
					b.Fatal(len(bs), err)
				}
			}
		})
	}
}
