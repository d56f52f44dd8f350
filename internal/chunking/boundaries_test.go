package chunking

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// wantTensorBounds finds each tensor's bytes in the file (random floats
// are unique) and returns their start and end offsets.
func wantTensorBounds(t *testing.T, file []byte, ts []testTensor) []int64 {
	t.Helper()
	var want []int64
	for _, tt := range ts {
		at := bytes.Index(file, tt.data)
		if at < 0 {
			t.Fatalf("tensor %s not in the file", tt.name)
		}
		want = append(want, int64(at), int64(at+len(tt.data)))
	}
	return want
}

func TestSafetensorsBoundaries(t *testing.T) {
	ts := randomTensors(rand.New(rand.NewPCG(7, 7)), 5)
	file := safetensorsFile(t, ts, map[string]string{"format": "pt"})
	got, err := Boundaries(bytes.NewReader(file), int64(len(file)), "dir/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	headerEnd := 8 + int64(binary.LittleEndian.Uint64(file))
	want := append(wantTensorBounds(t, file, ts), headerEnd)
	want = finish(want, int64(len(file))) // the last tensor ends at the end of the file: no cut there
	if !slices.Equal(got, want) {
		t.Fatalf("boundaries %v, want %v", got, want)
	}
	// By content: the same bytes under another name.
	if got2, err := Boundaries(bytes.NewReader(file), int64(len(file)), "weights.bin"); err != nil || !slices.Equal(got2, want) {
		t.Fatalf("by content: %v, %v", got2, err)
	}
}

func TestONNXBoundaries(t *testing.T) {
	ts := randomTensors(rand.New(rand.NewPCG(8, 8)), 5)
	file := onnxFile(ts, "doc")
	want := finish(wantTensorBounds(t, file, ts), int64(len(file)))
	for _, name := range []string{"model.onnx", "MODEL.ONNX", "blob"} {
		got, err := Boundaries(bytes.NewReader(file), int64(len(file)), name)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: boundaries %v, %v; want %v", name, got, err, want)
		}
	}
}

func TestOtherFilesHaveNoBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	random := normalFloats(rng, 10_000)
	random[0] = 0x08 // looks like the start of a protobuf to the sniffer
	for name, data := range map[string][]byte{
		"config.yaml":    []byte("model: llama\nlayers: 32\n"),
		"weights.bin":    random,
		"empty":          nil,
		"tokenizer.json": []byte(`{"version": "1.0"}`),
	} {
		got, err := Boundaries(bytes.NewReader(data), int64(len(data)), name)
		if got != nil || err != nil {
			t.Errorf("%s: %v, %v; want nil, nil", name, got, err)
		}
	}
}

// safetensorsRaw builds a file from a literal header and data size.
func safetensorsRaw(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func TestMalformedSafetensorsAreRefused(t *testing.T) {
	cases := map[string][]byte{
		"short":             []byte{1, 2, 3},
		"header past end":   binary.LittleEndian.AppendUint64(nil, 1000),
		"header too big":    append(binary.LittleEndian.AppendUint64(nil, maxSafetensorsHeader+1), '{'),
		"not json":          safetensorsRaw(`{"a": [`, 16),
		"not an object":     safetensorsRaw(`[1, 2]`, 16),
		"trailing data":     safetensorsRaw(`{}{}`, 16),
		"offsets past data": safetensorsRaw(`{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`, 16),
		"reversed offsets":  safetensorsRaw(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}`, 16),
		"three offsets":     safetensorsRaw(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}}`, 16),
		"negative offset":   safetensorsRaw(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}}`, 16),
		"huge offset":       safetensorsRaw(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,99999999999999999999999]}}`, 16),
		"wrong size":        safetensorsRaw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}`, 16),
		"shape overflow":    safetensorsRaw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}`, 16),
		"no dtype":          safetensorsRaw(`{"a":{"shape":[4],"data_offsets":[0,4]}}`, 16),
		"overlap": safetensorsRaw(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},`+
			`"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}`, 16),
		"bad metadata": safetensorsRaw(`{"__metadata__":{"a":1}}`, 16),
	}
	for name, file := range cases {
		got, err := Boundaries(bytes.NewReader(file), int64(len(file)), "x.safetensors")
		if got != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, %v; want nil and ErrMalformed", name, got, err)
		}
	}
	// An unknown dtype is no reason to refuse; a zero-sized tensor neither.
	ok := safetensorsRaw(`{"a":{"dtype":"F4","shape":[8],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}}  `, 16)
	if got, err := Boundaries(bytes.NewReader(ok), int64(len(ok)), "x.safetensors"); err != nil || len(got) == 0 {
		t.Fatalf("valid file: %v, %v", got, err)
	}
}

func TestMalformedONNXIsRefused(t *testing.T) {
	good := onnxFile(randomTensors(rand.New(rand.NewPCG(10, 10)), 2), "")
	cases := map[string][]byte{
		"truncated":       good[:len(good)-3],
		"no graph":        {0x08, 0x08},
		"bad wire type":   {0x08, 0x08, 0x3b}, // field 7, wire type 3 (group)
		"graph as varint": {0x08, 0x08, 0x38, 0x01},
		"length past end": {0x08, 0x08, 0x3a, 0x7f, 0x00},
		"bad varint":      {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"field zero":      {0x08, 0x08, 0x00},
	}
	for name, file := range cases {
		got, err := Boundaries(bytes.NewReader(file), int64(len(file)), "m.onnx")
		if got != nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, %v; want nil and ErrMalformed", name, got, err)
		}
	}
	// Deeply nested subgraphs stop at the depth limit instead of the stack.
	nested := []byte{}
	for range maxGraphDepth + 2 {
		// GraphProto{node{attribute{g: <nested>}}}
		attr := append([]byte{0x32}, varint(len(nested))...)
		attr = append(attr, nested...)
		node := append([]byte{0x2a}, varint(len(attr))...)
		node = append(node, attr...)
		nested = append([]byte{0x0a}, varint(len(node))...)
		nested = append(nested, node...)
	}
	deep := append([]byte{0x08, 0x08, 0x3a}, varint(len(nested))...)
	deep = append(deep, nested...)
	if _, err := Boundaries(bytes.NewReader(deep), int64(len(deep)), "deep.onnx"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested") {
		t.Fatalf("deep nesting: %v", err)
	}
}

func varint(n int) []byte { return binary.AppendUvarint(nil, uint64(n)) }

type brokenReaderAt struct{}

func (brokenReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errDisk }

func TestReadErrorIsNotMalformed(t *testing.T) {
	_, err := Boundaries(brokenReaderAt{}, 1000, "model.onnx")
	if !errors.Is(err, errDisk) || errors.Is(err, ErrMalformed) {
		t.Fatalf("want the read error, have %v", err)
	}
}
