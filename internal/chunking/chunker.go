package chunking

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	cdc "github.com/PlakarKorp/go-cdc-chunkers"
	// Registers the FastCDC implementations with the chunker registry.
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"
)

// algorithm names the FastCDC variant by its frozen version: chunk
// boundaries must never change between releases, or every backup after an
// upgrade would store everything again.
const algorithm = "fastcdc-v1.0.0"

// ErrInvalidOptions reports chunk sizes the chunker cannot work with.
var ErrInvalidOptions = errors.New("invalid chunking options")

// Options are the content-defined chunk sizes in bytes. Chunks inside a
// segment (the bytes between two boundaries) are at least Min long, except
// the last one of the segment; at most Max long; Avg long on average.
type Options struct {
	Min, Avg, Max int
}

// DefaultOptions were chosen by measurement on model files (see the package
// documentation): 1 MiB on average keeps the number of chunks, and so the
// index and tree sizes, small for multi-gigabyte models while tensor
// boundaries already give the dedup that smaller chunks would otherwise buy.
var DefaultOptions = Options{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}

// Validate checks the sizes: 64 B <= Min < Avg < Max <= 1 GiB, Avg a power
// of two (FastCDC derives its cut masks from its logarithm).
func (o Options) Validate() error {
	switch {
	case o.Min < 64 || o.Max > 1<<30:
		return fmt.Errorf("%w: sizes must be within 64 B and 1 GiB (min %d, max %d)", ErrInvalidOptions, o.Min, o.Max)
	case !(o.Min < o.Avg && o.Avg < o.Max):
		return fmt.Errorf("%w: want min < avg < max, have %d, %d, %d", ErrInvalidOptions, o.Min, o.Avg, o.Max)
	case o.Avg&(o.Avg-1) != 0:
		return fmt.Errorf("%w: avg %d is not a power of two", ErrInvalidOptions, o.Avg)
	}
	return nil
}

// Chunker cuts a stream into content-defined chunks, always cutting at the
// given boundaries too. Each segment between two boundaries is chunked as if
// it were a stream of its own, so a tensor's chunks depend only on the
// tensor's bytes: a tensor that moved to another offset, or to another file,
// gives the same chunks. It reads the stream once and holds at most two
// maximum-sized chunks of it in memory.
type Chunker struct {
	src    io.Reader
	bounds []int64 // strictly ascending, all > 0
	next   int     // index in bounds of the end of the current segment
	start  int64   // stream offset where the current segment starts
	seg    io.LimitedReader
	fc     *cdc.Chunker
	open   bool    // a segment is being chunked
	buf    *[]byte // the chunker's window, pooled
	err    error
}

// New returns a chunker over r that cuts at every boundary: offsets from
// the start of r, as Boundaries returns them. Boundaries are sorted and
// duplicates or offsets <= 0 dropped; New keeps its own copy. Invalid
// options make the first Next fail with ErrInvalidOptions.
func New(r io.Reader, boundaries []int64, opts Options) *Chunker {
	c := &Chunker{src: r}
	if err := opts.Validate(); err != nil {
		c.err = err
		return c
	}
	c.bounds = cleanBoundaries(boundaries)
	c.buf = getBuffer(2 * opts.Max) // twice Max: fewer in-place compactions
	fc, err := cdc.NewChunkerBuffer(algorithm, nil, &cdc.ChunkerOpts{
		MinSize: opts.Min, NormalSize: opts.Avg, MaxSize: opts.Max,
	}, *c.buf)
	if err != nil {
		c.err = fmt.Errorf("%w: %v", ErrInvalidOptions, err)
		return c
	}
	c.fc = fc
	return c
}

// Buffers are pooled: a backup chunks many files one after the other, and
// a fresh buffer of twice the maximum chunk size for each (8 MiB by
// default) would cost a large zeroed allocation per file.
var buffers sync.Pool

func getBuffer(n int) *[]byte {
	if b, ok := buffers.Get().(*[]byte); ok && len(*b) >= n {
		return b
	}
	b := make([]byte, n)
	return &b
}

// release returns the buffer once the stream is done: the caller may no
// longer use the last chunk after the call that returned io.EOF or an
// error.
func (c *Chunker) release() {
	if c.buf != nil {
		buffers.Put(c.buf)
		c.buf, c.fc = nil, nil
	}
}

func cleanBoundaries(in []int64) []int64 {
	out := slices.Clone(in)
	slices.Sort(out)
	out = slices.Compact(out)
	i, _ := slices.BinarySearch(out, 1) // drop offsets <= 0
	return out[i:]
}

// Next returns the next chunk; buf is reused (valid until the next call,
// and not after: the buffer goes back to a pool once the stream ends);
// io.EOF at the end. A read error of the stream is returned as it is, and
// again on every later call.
func (c *Chunker) Next() (chunk []byte, err error) {
	for c.err == nil {
		if !c.open {
			c.openSegment()
		}
		data, err := c.fc.Next()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			c.open = false
			if c.next > len(c.bounds) { // the last segment ran to the end
				c.err = io.EOF
			}
		default:
			c.err = err
			data = nil // a read error: no partial chunk
		}
		if len(data) > 0 {
			return data, nil
		}
	}
	c.release()
	return nil, c.err
}

// openSegment starts chunking the bytes up to the next boundary, or to
// the end of the stream after the last one.
func (c *Chunker) openSegment() {
	limit := int64(math.MaxInt64)
	if c.next < len(c.bounds) {
		end := c.bounds[c.next]
		limit = end - c.start
		c.start = end
	}
	c.next++
	c.seg = io.LimitedReader{R: c.src, N: limit}
	c.fc.Reset(&c.seg)
	c.open = true
}
