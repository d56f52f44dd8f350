package repository

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstd at its fastest level, shared by all goroutines: EncodeAll and
// DecodeAll are safe for concurrent use.
var (
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxBlobSize), zstd.WithDecoderConcurrency(0))
)

// compress returns the payload to store for data and its flags, using
// scratch (which it may outgrow) for the compressed form. The compressed
// form is kept only when it saves at least 1/32 of the size: below that
// the saving does not pay for decompressing on every restore, and
// incompressible input (float weights, already compressed files) stays as
// it is.
//
// Blobs of 128 KiB and more are first judged by a 32 KiB sample from their
// middle: model weights do not compress, and compressing all of a blob
// only to throw the result away would be the costliest step of a backup.
// A sample that saves less than 1/64 means the blob is stored as it is.
func compress(data, scratch []byte) ([]byte, uint8) {
	if len(data) < 64 {
		return data, 0
	}
	if len(data) >= 4*compressSample {
		mid := len(data)/2 - compressSample/2
		sample := zstdEncoder.EncodeAll(data[mid:mid+compressSample], scratch[:0])
		if len(sample) > compressSample-compressSample/64 {
			return data, 0
		}
	}
	out := zstdEncoder.EncodeAll(data, scratch[:0])
	if len(out) > len(data)-len(data)/32 {
		return data, 0
	}
	return out, flagCompressed
}

const compressSample = 32 << 10

// scratchPool recycles compression buffers: allocating (and zeroing) one
// per blob costs as much as compressing incompressible data.
var scratchPool sync.Pool

func getScratch(n int) *[]byte {
	// Room for zstd's worst case (incompressible input plus block
	// headers), so EncodeAll never grows the buffer by copying it.
	n += n/128 + 4096
	if b, ok := scratchPool.Get().(*[]byte); ok && cap(*b) >= n {
		return b
	}
	b := make([]byte, 0, n)
	return &b
}

func putScratch(b *[]byte) { scratchPool.Put(b) }

// decompress turns a stored payload back into rawLength bytes of
// plaintext.
func decompress(payload []byte, flags uint8, rawLength uint32) ([]byte, error) {
	if flags&flagCompressed == 0 {
		if uint32(len(payload)) != rawLength {
			return nil, fmt.Errorf("payload of %d bytes, index says %d: %w", len(payload), rawLength, ErrCorrupt)
		}
		return payload, nil
	}
	if rawLength > MaxBlobSize {
		return nil, fmt.Errorf("raw length %d over the blob limit: %w", rawLength, ErrCorrupt)
	}
	out, err := zstdDecoder.DecodeAll(payload, make([]byte, 0, rawLength))
	if err != nil {
		return nil, fmt.Errorf("decompress: %v: %w", err, ErrCorrupt)
	}
	if uint32(len(out)) != rawLength {
		return nil, fmt.Errorf("decompressed to %d bytes, index says %d: %w", len(out), rawLength, ErrCorrupt)
	}
	return out, nil
}
