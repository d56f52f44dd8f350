package oip

import (
	"encoding/json"
	"math/rand"
	"strconv"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// requestBody builds an FP32 request with the given shape, fully nested as
// clients built on numpy's tolist() send it.
func requestBody(shape []int) []byte {
	r := rand.New(rand.NewSource(1))
	b := []byte(`{"id":"bench","inputs":[{"name":"x","datatype":"FP32","shape":[`)
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	b = append(b, `],"data":`...)
	var nest func(b []byte, dims []int) []byte
	nest = func(b []byte, dims []int) []byte {
		b = append(b, '[')
		for i := 0; i < dims[0]; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if len(dims) > 1 {
				b = nest(b, dims[1:])
			} else {
				b = strconv.AppendFloat(b, float64(r.Float32()*10-5), 'g', -1, 32)
			}
		}
		return append(b, ']')
	}
	b = nest(b, shape)
	return append(b, "}]}"...)
}

func benchDecode(b *testing.B, shape []int) {
	body := requestBody(shape)
	if _, err := DecodeInferRequest(body); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeInferRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch8x4(b *testing.B) { benchDecode(b, []int{8, 4}) }

func BenchmarkDecode1x3x32x32(b *testing.B) { benchDecode(b, []int{1, 3, 32, 32}) }

// BenchmarkDecodeStdlibBatch8x4 is the reference: the same body decoded by
// encoding/json into generic values, as a naive handler would.
func BenchmarkDecodeStdlibBatch8x4(b *testing.B) {
	body := requestBody([]int{8, 4})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			ID     string `json:"id"`
			Inputs []struct {
				Name     string  `json:"name"`
				Datatype string  `json:"datatype"`
				Shape    []int64 `json:"shape"`
				Data     any     `json:"data"`
			} `json:"inputs"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBatch8x3(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	y := tensor.New(tensor.Float32, []int{8, 3})
	for i := range y.F32 {
		y.F32[i] = r.Float32()
	}
	resp := &Response{ModelName: "iris", ModelVersion: "1", ID: "bench", Outputs: []Output{{Name: "y", Tensor: y}}}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendInferResponse(buf[:0], resp); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
