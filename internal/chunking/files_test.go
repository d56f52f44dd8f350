package chunking

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
)

// testOptions are small sizes so tests cut many chunks from small files.
var testOptions = Options{Min: 4 << 10, Avg: 16 << 10, Max: 64 << 10}

type testTensor struct {
	name  string
	shape []int
	data  []byte // little-endian float32
}

// normalFloats returns n float32 values from a normal distribution, as
// trained weights look: no runs of zeros for the chunker to lean on.
func normalFloats(rng *rand.Rand, n int) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
	}
	return b
}

func randomTensors(rng *rand.Rand, count int) []testTensor {
	ts := make([]testTensor, count)
	for i := range ts {
		rows := 1 + rng.IntN(256)
		cols := 64 * (1 + rng.IntN(16))
		ts[i] = testTensor{name: fmt.Sprintf("layers.%d.weight", i), shape: []int{rows, cols}, data: normalFloats(rng, rows*cols)}
	}
	return ts
}

// safetensorsFile lays tensors out in the given order as the format says.
func safetensorsFile(t testing.TB, ts []testTensor, meta map[string]string) []byte {
	t.Helper()
	header := map[string]any{}
	if meta != nil {
		header["__metadata__"] = meta
	}
	var off int
	for _, tt := range ts {
		header[tt.name] = map[string]any{"dtype": "F32", "shape": tt.shape, "data_offsets": []int{off, off + len(tt.data)}}
		off += len(tt.data)
	}
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(hb)%8 != 0 { // writers pad the header with spaces
		hb = append(hb, ' ')
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(hb)))
	buf.Write(hb)
	for _, tt := range ts {
		buf.Write(tt.data)
	}
	return buf.Bytes()
}

// onnxFile is a valid ModelProto holding the tensors as initializers of a
// MatMul chain.
func onnxFile(ts []testTensor, doc string) []byte {
	g := &onnx.Graph{Name: "g"}
	for i, tt := range ts {
		dims := make([]int64, len(tt.shape))
		for j, d := range tt.shape {
			dims[j] = int64(d)
		}
		g.Initializers = append(g.Initializers, &onnx.TensorProto{
			Name: tt.name, Dims: dims, DataType: onnx.DataFloat, RawData: tt.data, HasRawData: true,
		})
		g.Nodes = append(g.Nodes, &onnx.Node{
			OpType: "MatMul", Inputs: []string{fmt.Sprintf("x%d", i), tt.name}, Outputs: []string{fmt.Sprintf("x%d", i+1)},
		})
	}
	g.Inputs = []*onnx.ValueInfo{{Name: "x0", ElemType: onnx.DataFloat}}
	g.Outputs = []*onnx.ValueInfo{{Name: fmt.Sprintf("x%d", len(ts)), ElemType: onnx.DataFloat}}
	return onnx.Encode(&onnx.Model{
		IRVersion: 8, ProducerName: "test", DocString: doc, Graph: g,
		OpsetImports: []onnx.OpsetID{{Version: 17}},
	})
}

type testChunk struct {
	off  int64
	data []byte
}

// chunkAll runs a chunker to the end and copies out every chunk.
func chunkAll(t testing.TB, data []byte, bounds []int64, opts Options) []testChunk {
	t.Helper()
	c := New(bytes.NewReader(data), bounds, opts)
	var out []testChunk
	var off int64
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("next chunk at %d: %v", off, err)
		}
		out = append(out, testChunk{off: off, data: bytes.Clone(b)})
		off += int64(len(b))
	}
}

func chunkIDs(cs []testChunk) map[[32]byte]int {
	ids := make(map[[32]byte]int, len(cs))
	for _, c := range cs {
		ids[sha256.Sum256(c.data)] = len(c.data)
	}
	return ids
}

// newBytes counts the bytes of chunks in cs that the set old lacks, each
// distinct chunk once: what a backup would add to a repository.
func newBytes(old map[[32]byte]int, cs []testChunk) int64 {
	seen := map[[32]byte]bool{}
	var n int64
	for _, c := range cs {
		id := sha256.Sum256(c.data)
		if _, ok := old[id]; !ok && !seen[id] {
			seen[id] = true
			n += int64(len(c.data))
		}
	}
	return n
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
