package chunking

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
)

// A safetensors file is an 8-byte little-endian header length N, a JSON
// object of N bytes mapping tensor names to {dtype, shape, data_offsets}
// (offsets relative to the end of the header) plus an optional
// "__metadata__" object of strings, then the tensors' bytes.
const (
	// maxSafetensorsHeader is the format's own limit on the header.
	maxSafetensorsHeader = 100 << 20
	// maxTensors bounds the boundaries kept for one file; real models have
	// tens of thousands of tensors at most.
	maxTensors = 1 << 20
)

// safetensorsDTypeSize is the element size of the dtypes the format
// defines; a dtype not listed is accepted without the size check, so a
// newer dtype still gets its boundaries.
var safetensorsDTypeSize = map[string]uint64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// looksLikeSafetensors checks the first 9 bytes: a header length that fits
// the file and a header that starts as a JSON object.
func looksLikeSafetensors(head []byte, size int64) bool {
	if len(head) < 9 || head[8] != '{' {
		return false
	}
	n := binary.LittleEndian.Uint64(head)
	return n >= 2 && n <= maxSafetensorsHeader && n <= uint64(size-8)
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []uint64 `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

type span struct {
	name       string
	begin, end uint64
}

// safetensorsBoundaries walks the header token by token, so memory stays
// bounded by the largest single entry rather than the header's size.
func safetensorsBoundaries(cur *cursor) ([]int64, error) {
	head, err := cur.peek(0, 8)
	if err != nil {
		return nil, err
	}
	if len(head) < 8 {
		return nil, malformed("file of %d bytes is shorter than the header length", cur.size)
	}
	n := binary.LittleEndian.Uint64(head)
	if n > maxSafetensorsHeader || n > uint64(cur.size-8) {
		return nil, malformed("header length %d does not fit a file of %d bytes (limit %d)", n, cur.size, maxSafetensorsHeader)
	}
	dataStart := 8 + int64(n)
	dataLen := uint64(cur.size - dataStart)

	src := &recordingReader{r: io.NewSectionReader(cur.r, 8, int64(n))}
	dec := json.NewDecoder(bufio.NewReaderSize(src, 32<<10))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, src.decodeError(err)
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, src.decodeError(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, malformed("header key %v is not a string", tok)
		}
		if name == "__metadata__" {
			var meta map[string]string
			if err := dec.Decode(&meta); err != nil {
				return nil, src.decodeError(fmt.Errorf("__metadata__: %w", err))
			}
			continue
		}
		var e safetensorsEntry
		if err := dec.Decode(&e); err != nil {
			return nil, src.decodeError(fmt.Errorf("tensor %q: %w", name, err))
		}
		sp, err := checkEntry(name, e, dataLen)
		if err != nil {
			return nil, err
		}
		if len(spans) == maxTensors {
			return nil, malformed("more than %d tensors", maxTensors)
		}
		spans = append(spans, sp)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, src.decodeError(err)
	}
	// The header may be padded with spaces after the object, nothing else.
	if _, err := dec.Token(); err != io.EOF {
		if src.err != nil {
			return nil, src.decodeError(err)
		}
		return nil, malformed("data after the header object")
	}

	slices.SortFunc(spans, func(a, b span) int {
		if a.begin != b.begin {
			return compareU64(a.begin, b.begin)
		}
		return compareU64(a.end, b.end)
	})
	out := make([]int64, 0, 2*len(spans)+1)
	out = append(out, dataStart)
	for i, sp := range spans {
		if i > 0 && sp.begin < spans[i-1].end {
			return nil, malformed("tensors %q and %q overlap", spans[i-1].name, sp.name)
		}
		out = append(out, dataStart+int64(sp.begin), dataStart+int64(sp.end))
	}
	return out, nil
}

func checkEntry(name string, e safetensorsEntry, dataLen uint64) (span, error) {
	if len(e.DataOffsets) != 2 {
		return span{}, malformed("tensor %q: data_offsets has %d values, want 2", name, len(e.DataOffsets))
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin > end || end > dataLen {
		return span{}, malformed("tensor %q: data_offsets [%d, %d] outside the %d data bytes", name, begin, end, dataLen)
	}
	if size, ok := safetensorsDTypeSize[e.DType]; ok {
		count := uint64(1)
		for _, d := range e.Shape {
			hi, lo := bits.Mul64(count, d)
			if hi != 0 {
				return span{}, malformed("tensor %q: shape %v overflows", name, e.Shape)
			}
			count = lo
		}
		hi, want := bits.Mul64(count, size)
		if hi != 0 || want != end-begin {
			return span{}, malformed("tensor %q: %s%v needs %d bytes, data_offsets give %d", name, e.DType, e.Shape, want, end-begin)
		}
	} else if e.DType == "" {
		return span{}, malformed("tensor %q: no dtype", name)
	}
	return span{name: name, begin: begin, end: end}, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return malformed("header: want %q, have %v", want, tok)
	}
	return nil
}

// recordingReader remembers a read error of the file, so that it is
// reported as such and not mistaken for bad JSON.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// decodeError classifies an error of the JSON decoder.
func (r *recordingReader) decodeError(err error) error {
	if r.err != nil {
		return fmt.Errorf("read header: %w", r.err)
	}
	if errors.Is(err, ErrMalformed) {
		return err
	}
	return malformed("header: %v", err)
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
