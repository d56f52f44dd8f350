package chunking

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/onnx"
)

// FuzzBoundaries feeds arbitrary bytes under each model name: Boundaries
// must never panic, and what it returns must be usable cut points.
func FuzzBoundaries(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 11))
	ts := randomTensors(rng, 3)
	for i := range ts { // keep the seeds small
		ts[i].shape = []int{4}
		ts[i].data = ts[i].data[:16]
	}
	f.Add(safetensorsFile(f, ts, map[string]string{"format": "pt"}))
	f.Add(onnxFile(ts, "seed"))
	f.Add(safetensorsRaw(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}`, 16))
	f.Add([]byte{0x08, 0x08, 0x3a, 0x04, 0x2a, 0x02, 0x4a, 0x00})
	f.Add([]byte("plain text"))
	f.Fuzz(func(t *testing.T, data []byte) {
		data = data[:len(data):len(data)]
		for _, name := range []string{"m.safetensors", "m.onnx", "m.bin"} {
			got, err := Boundaries(bytes.NewReader(data), int64(len(data)), name)
			if err != nil {
				if got != nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: boundaries %v with error %v", name, got, err)
				}
				continue
			}
			for i, b := range got {
				if b <= 0 || b >= int64(len(data)) || (i > 0 && b <= got[i-1]) {
					t.Fatalf("%s: boundaries %v not ascending within (0,%d)", name, got, len(data))
				}
			}
			if name == "m.onnx" {
				checkInitializersCut(t, data, got)
			}
		}
	})
}

// checkInitializersCut verifies, for a file the ONNX decoder accepts, that
// each initializer's raw data is bracketed by boundaries. The decoder
// aliases raw_data into its input, which locates it.
func checkInitializersCut(t *testing.T, data []byte, got []int64) {
	m, err := onnx.Decode(data)
	if err != nil || m.Graph == nil {
		return
	}
	for _, init := range m.Graph.Initializers {
		raw := init.RawData
		if len(raw) == 0 {
			continue
		}
		off := int64(cap(data) - cap(raw))
		if off < 0 || off+int64(len(raw)) > int64(len(data)) || &data[off] != &raw[0] {
			continue // not aliased
		}
		for _, b := range []int64{off, off + int64(len(raw))} {
			if b > 0 && b < int64(len(data)) {
				if _, found := slices.BinarySearch(got, b); !found {
					t.Fatalf("initializer %q at [%d,%d): no boundary at %d in %v", init.Name, off, off+int64(len(raw)), b, got)
				}
			}
		}
	}
}

// FuzzChunker checks that any stream and any boundaries give chunks that
// join to the stream, cut at every boundary, within the size limits.
func FuzzChunker(f *testing.F) {
	f.Add(bytes.Repeat([]byte("abcdefgh"), 500), []byte{1, 2, 3, 200, 0, 0, 0, 0})
	f.Add([]byte{}, []byte{})
	opts := Options{Min: 64, Avg: 256, Max: 1024}
	f.Fuzz(func(t *testing.T, data, rawBounds []byte) {
		var bounds []int64
		for len(rawBounds) >= 2 {
			bounds = append(bounds, int64(binary.LittleEndian.Uint16(rawBounds))-100)
			rawBounds = rawBounds[2:]
		}
		cs := chunkAll(t, data, bounds, opts)
		var joined []byte
		starts := map[int64]bool{}
		for _, c := range cs {
			if len(c.data) == 0 || len(c.data) > opts.Max {
				t.Fatalf("chunk of %d bytes", len(c.data))
			}
			starts[c.off] = true
			joined = append(joined, c.data...)
		}
		if !bytes.Equal(joined, data) {
			t.Fatal("chunks do not join to the input")
		}
		for _, b := range bounds {
			if b > 0 && b < int64(len(data)) && !starts[b] {
				t.Fatalf("no cut at boundary %d", b)
			}
		}
	})
}
