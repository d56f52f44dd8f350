package chunking

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// ErrMalformed marks a file that claims to be a model format (by its name
// or its first bytes) but does not parse as one. Boundaries then returns
// no boundaries and the file is chunked like any other; callers may log it,
// a backup never fails because of it.
var ErrMalformed = errors.New("malformed model file")

// Boundaries returns the offsets (ascending, within (0,size)) where a model
// file's tensors start and end, for .safetensors and .onnx files (by
// content, not only by name); nil for other files or when the format is
// not recognised. It reads only the file's headers through r, never the
// tensor data: a safetensors JSON header, or the protobuf framing of an
// ONNX ModelProto whose payloads it skips.
//
// A file named as a model, or looking like one, that fails validation gives
// nil boundaries and an error wrapping ErrMalformed; a read error of r is
// returned wrapped as it is. Either way the caller can go on with plain
// content-defined chunking.
func Boundaries(r io.ReaderAt, size int64, name string) ([]int64, error) {
	ext := strings.ToLower(path.Ext(strings.ReplaceAll(name, "\\", "/")))
	cur := newCursor(r, size)
	head, err := cur.peek(0, 9)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if ext == ".safetensors" || looksLikeSafetensors(head, size) {
		b, err := safetensorsBoundaries(cur)
		if err == nil {
			return finish(b, size), nil
		}
		if ext == ".safetensors" || !errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("safetensors %s: %w", name, err)
		}
	}
	// ONNX has no magic number; a ModelProto written by any protobuf
	// library starts with ir_version (field 1, varint): tag byte 0x08.
	if ext == ".onnx" || (len(head) > 0 && head[0] == 0x08) {
		b, err := onnxBoundaries(cur)
		if err == nil {
			return finish(b, size), nil
		}
		if ext == ".onnx" || !errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("onnx %s: %w", name, err)
		}
	}
	return nil, nil
}

// finish sorts, deduplicates and drops offsets outside (0,size), which are
// no cut at all.
func finish(b []int64, size int64) []int64 {
	slices.Sort(b)
	b = slices.Compact(b)
	out := b[:0]
	for _, o := range b {
		if o > 0 && o < size {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return slices.Clip(out)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// cursor reads small pieces of a file at arbitrary offsets through one
// window, so walking a header costs few ReadAt calls and no large buffers.
type cursor struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

const cursorWindow = 64 << 10

func newCursor(r io.ReaderAt, size int64) *cursor {
	return &cursor{r: r, size: size, buf: make([]byte, cursorWindow)}
}

// peek returns up to n (<= cursorWindow) bytes at pos; fewer only at the
// end of the file.
func (c *cursor) peek(pos int64, n int) ([]byte, error) {
	if pos < 0 || pos > c.size {
		return nil, malformed("offset %d outside the file", pos)
	}
	n = int(min(int64(n), c.size-pos))
	if pos >= c.off && pos+int64(n) <= c.off+int64(c.n) {
		i := int(pos - c.off)
		return c.buf[i : i+n], nil
	}
	want := int(min(int64(len(c.buf)), c.size-pos))
	got, err := c.r.ReadAt(c.buf[:want], pos)
	if got < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.n = 0
		return nil, err
	}
	c.off, c.n = pos, got
	return c.buf[:n], nil
}
