package chunking

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestChunksConcatenateToInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, size := range []int{0, 1, 100, testOptions.Min, testOptions.Max, 3*testOptions.Max + 17, 1 << 20} {
		data := normalFloats(rng, (size+3)/4)[:size]
		var bounds []int64
		for range rng.IntN(10) {
			bounds = append(bounds, rng.Int64N(int64(size)+10)-5) // some outside (0,size)
		}
		cs := chunkAll(t, data, bounds, testOptions)
		var joined []byte
		for _, c := range cs {
			if len(c.data) == 0 || len(c.data) > testOptions.Max {
				t.Fatalf("size %d: chunk of %d bytes at %d", size, len(c.data), c.off)
			}
			joined = append(joined, c.data...)
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("size %d: %d chunks join to %d bytes that differ from the input", size, len(cs), len(joined))
		}
	}
}

func TestBoundariesHonoured(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	data := normalFloats(rng, 256<<10) // 1 MiB
	bounds := []int64{10, 4096, 4097, 300_000, 300_000, 700_001, 1<<20 - 1}
	cs := chunkAll(t, data, bounds, testOptions)
	starts := map[int64]bool{}
	for i, c := range cs {
		starts[c.off] = true
		// Inside a segment only the segment's last chunk may be short.
		end := c.off + int64(len(c.data))
		if len(c.data) < testOptions.Min && !slices.Contains(bounds, end) && i != len(cs)-1 {
			t.Errorf("chunk at %d of %d bytes is below the minimum without a boundary at its end", c.off, len(c.data))
		}
	}
	for _, b := range bounds {
		if !starts[b] {
			t.Errorf("no chunk starts at boundary %d", b)
		}
	}
}

func TestChunkingIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	data := normalFloats(rng, 200_000)
	bounds := []int64{12345, 400_000}
	a := chunkAll(t, data, bounds, testOptions)
	b := chunkAll(t, data, bounds, testOptions)
	if len(a) != len(b) {
		t.Fatalf("%d chunks, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].off != b[i].off || !bytes.Equal(a[i].data, b[i].data) {
			t.Fatalf("chunk %d differs between runs", i)
		}
	}
	if len(a) < 10 {
		t.Fatalf("only %d chunks from 800 KB with a 16 KiB average", len(a))
	}
}

// A fine-tune replaces 10% of the tensors and rewrites the header (a new
// metadata entry shifts every tensor): the new file must share every chunk
// of its unchanged tensors with the old one.
func TestFineTuneSharesUnchangedTensors(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	base := randomTensors(rng, 40)
	tuned := slices.Clone(base)
	changed := map[string]bool{}
	var replaced int64
	for _, i := range rng.Perm(len(tuned))[:4] {
		tuned[i].data = normalFloats(rng, len(tuned[i].data)/4)
		changed[tuned[i].name] = true
		replaced += int64(len(tuned[i].data))
	}
	for _, format := range []string{"safetensors", "onnx"} {
		t.Run(format, func(t *testing.T) {
			var oldFile, newFile []byte
			if format == "safetensors" {
				oldFile = safetensorsFile(t, base, map[string]string{"format": "pt"})
				newFile = safetensorsFile(t, tuned, map[string]string{"format": "pt", "fine_tuned_from": "base-model-v1"})
			} else {
				oldFile = onnxFile(base, "")
				newFile = onnxFile(tuned, "fine-tuned from base-model-v1")
			}
			oldChunks := chunkAll(t, oldFile, mustBoundaries(t, oldFile, "model."+format), testOptions)
			newBounds := mustBoundaries(t, newFile, "model."+format)
			newChunks := chunkAll(t, newFile, newBounds, testOptions)
			old := chunkIDs(oldChunks)

			for _, tt := range tuned {
				if changed[tt.name] {
					continue
				}
				at := int64(bytes.Index(newFile, tt.data))
				for _, c := range newChunks {
					if c.off < at || c.off+int64(len(c.data)) > at+int64(len(tt.data)) {
						continue
					}
					if _, ok := old[sha256Of(c.data)]; !ok {
						t.Fatalf("unchanged tensor %s: chunk at %d is new", tt.name, c.off)
					}
				}
			}
			added := newBytes(old, newChunks)
			if added > replaced*11/10 {
				t.Errorf("fine-tune adds %d bytes for %d replaced (%.2fx); want at most 1.1x", added, replaced, float64(added)/float64(replaced))
			}
			plain := newBytes(chunkIDs(chunkAll(t, oldFile, nil, testOptions)), chunkAll(t, newFile, nil, testOptions))
			t.Logf("%s: replaced %d bytes; model-aware adds %d (%.3fx), plain CDC adds %d (%.3fx)",
				format, replaced, added, float64(added)/float64(replaced), plain, float64(plain)/float64(replaced))
		})
	}
}

// A tensor moved to another offset (here: to another file, behind other
// tensors) keeps its chunks.
func TestMovedTensorKeepsItsChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	ts := randomTensors(rng, 6)
	big := testTensor{name: "embed", shape: []int{1024, 64}, data: normalFloats(rng, 1024*64)}
	first := safetensorsFile(t, append([]testTensor{big}, ts[:2]...), nil)
	second := safetensorsFile(t, append(slices.Clone(ts[2:]), big), nil)
	a := chunkAll(t, first, mustBoundaries(t, first, "a.safetensors"), testOptions)
	b := chunkAll(t, second, mustBoundaries(t, second, "b.safetensors"), testOptions)
	ids := chunkIDs(b)
	at := int64(bytes.Index(first, big.data))
	var shared int64
	for _, c := range a {
		if c.off >= at && c.off < at+int64(len(big.data)) {
			if _, ok := ids[sha256Of(c.data)]; !ok {
				t.Fatalf("chunk of the moved tensor at %d is not shared", c.off)
			}
			shared += int64(len(c.data))
		}
	}
	if shared != int64(len(big.data)) {
		t.Fatalf("shared %d bytes of a %d byte tensor", shared, len(big.data))
	}
}

// A tensor changed only in part (rows of an embedding updated) shares the
// chunks before and after the change: content-defined cuts inside the
// tensor resynchronise.
func TestPartlyChangedTensorSharesTheRest(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	embed := testTensor{name: "embed", shape: []int{2048, 128}, data: normalFloats(rng, 2048*128)} // 1 MiB
	tuned := embed
	tuned.data = bytes.Clone(embed.data)
	changed := tuned.data[400_000:450_000]
	copy(changed, normalFloats(rng, len(changed)/4))
	oldFile := safetensorsFile(t, []testTensor{embed}, nil)
	newFile := safetensorsFile(t, []testTensor{tuned}, nil)
	old := chunkIDs(chunkAll(t, oldFile, mustBoundaries(t, oldFile, "a.safetensors"), testOptions))
	added := newBytes(old, chunkAll(t, newFile, mustBoundaries(t, newFile, "a.safetensors"), testOptions))
	// At most the changed bytes plus a maximum chunk on either side.
	if limit := int64(len(changed) + 2*testOptions.Max); added > limit {
		t.Fatalf("changing %d bytes of a %d byte tensor adds %d bytes; want at most %d", len(changed), len(embed.data), added, limit)
	}
}

// Chunkers running at once, as a backup's file workers do, share the
// buffer pool without seeing each other's bytes.
func TestConcurrentChunkers(t *testing.T) {
	const workers = 4
	inputs := make([][]byte, workers)
	for i := range inputs {
		inputs[i] = normalFloats(rand.New(rand.NewPCG(uint64(i), 15)), 50_000+i*1000)
	}
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			for range 5 {
				var joined []byte
				c := New(bytes.NewReader(inputs[i]), []int64{1000, 70_000}, testOptions)
				for {
					b, err := c.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
					joined = append(joined, b...)
				}
				if !bytes.Equal(joined, inputs[i]) {
					errs <- errors.New("chunks do not join to the input")
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

type failingReader struct {
	r     io.Reader
	after int
}

var errDisk = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errDisk
	}
	if len(p) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= n
	return n, err
}

func TestReadErrorIsReturned(t *testing.T) {
	data := normalFloats(rand.New(rand.NewPCG(6, 6)), 100_000)
	c := New(&failingReader{r: bytes.NewReader(data), after: 150_000}, []int64{1000}, testOptions)
	var err error
	for err == nil {
		_, err = c.Next()
	}
	if !errors.Is(err, errDisk) {
		t.Fatalf("want the read error, have %v", err)
	}
	if _, again := c.Next(); !errors.Is(again, errDisk) {
		t.Fatalf("a later call returned %v", again)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []Options{{}, {Min: 10, Avg: 1024, Max: 4096}, {Min: 1024, Avg: 1000, Max: 4096}, {Min: 1024, Avg: 3000, Max: 8192}, {Min: 1024, Avg: 4096, Max: 2048}} {
		if _, err := New(bytes.NewReader([]byte("x")), nil, o).Next(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: want ErrInvalidOptions, have %v", o, err)
		}
	}
	if err := DefaultOptions.Validate(); err != nil {
		t.Fatal(err)
	}
}

func mustBoundaries(t testing.TB, file []byte, name string) []int64 {
	t.Helper()
	b, err := Boundaries(bytes.NewReader(file), int64(len(file)), name)
	if err != nil || len(b) == 0 {
		t.Fatalf("boundaries of %s: %v, %v", name, b, err)
	}
	return b
}
