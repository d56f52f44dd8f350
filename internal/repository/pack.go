package repository

import (
	"encoding/binary"
	"fmt"
)

// A pack file is
//
//	sealed blob 0 | sealed blob 1 | ... | trailer envelope | trailer length (uint32 LE)
//
// where a sealed blob is nonce || AES-256-GCM(payload) || tag with the
// blob's type, flags and id as additional data, and the trailer envelope
// (kind "pack trailer") lists the blobs in order:
//
//	count uint32 | count × (type u8, flags u8, stored length u32, raw length u32, id [32]byte)
//
// all little endian. Offsets follow from the lengths. The trailer lets a
// pack that no index lists yet (its writer died before writing one) be
// recovered. The pack's name is the Hash of all its bytes.

const (
	trailerEntrySize = 1 + 1 + 4 + 4 + 32
	maxPackBlobs     = 1 << 20
	// packTailRead is how much of a pack's end one read fetches when
	// looking for its trailer: enough for about 1500 blobs.
	packTailRead = 64 << 10
)

// blobEntry is one blob's place in a pack.
type blobEntry struct {
	Type      BlobType
	Flags     uint8
	ID        ID
	Offset    uint32
	Length    uint32 // stored (sealed) length
	RawLength uint32 // plaintext length
}

func (e blobEntry) key() blobKey { return blobKey{e.Type, e.ID} }

func (e blobEntry) validate() error {
	if !e.Type.valid() {
		return fmt.Errorf("blob %s has unknown type %d: %w", e.ID.Short(), e.Type, ErrCorrupt)
	}
	if e.Flags&^knownFlags != 0 {
		return fmt.Errorf("blob %s has unknown flags %#x: %w", e.ID.Short(), e.Flags, ErrUnsupportedFormat)
	}
	if e.Length < blobOverhead || e.RawLength > MaxBlobSize || e.Length > MaxBlobSize+blobOverhead+MaxBlobSize/64 {
		return fmt.Errorf("blob %s has impossible lengths %d/%d: %w", e.ID.Short(), e.Length, e.RawLength, ErrCorrupt)
	}
	if e.Flags&flagCompressed == 0 && e.Length != e.RawLength+blobOverhead {
		return fmt.Errorf("uncompressed blob %s stored in %d bytes for %d: %w", e.ID.Short(), e.Length, e.RawLength, ErrCorrupt)
	}
	return nil
}

func encodeTrailer(entries []blobEntry) []byte {
	out := make([]byte, 4, 4+len(entries)*trailerEntrySize)
	binary.LittleEndian.PutUint32(out, uint32(len(entries)))
	for _, e := range entries {
		out = append(out, byte(e.Type), e.Flags)
		out = binary.LittleEndian.AppendUint32(out, e.Length)
		out = binary.LittleEndian.AppendUint32(out, e.RawLength)
		out = append(out, e.ID[:]...)
	}
	return out
}

// decodeTrailer parses a trailer's plaintext; blobsSize is the number of
// bytes before the trailer, which the blobs must cover exactly.
func decodeTrailer(plain []byte, blobsSize int64) ([]blobEntry, error) {
	if len(plain) < 4 {
		return nil, fmt.Errorf("pack trailer of %d bytes: %w", len(plain), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(plain)
	if n > maxPackBlobs || int64(len(plain)) != 4+int64(n)*trailerEntrySize {
		return nil, fmt.Errorf("pack trailer of %d bytes claims %d blobs: %w", len(plain), n, ErrCorrupt)
	}
	entries := make([]blobEntry, n)
	var offset int64
	p := plain[4:]
	for i := range entries {
		e := blobEntry{Type: BlobType(p[0]), Flags: p[1], Offset: uint32(offset)}
		e.Length = binary.LittleEndian.Uint32(p[2:])
		e.RawLength = binary.LittleEndian.Uint32(p[6:])
		copy(e.ID[:], p[10:42])
		p = p[trailerEntrySize:]
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("pack trailer entry %d: %w", i, err)
		}
		offset += int64(e.Length)
		if offset > blobsSize {
			return nil, fmt.Errorf("pack trailer lists more bytes than the pack holds: %w", ErrCorrupt)
		}
		entries[i] = e
	}
	if offset != blobsSize {
		return nil, fmt.Errorf("pack trailer covers %d of %d blob bytes: %w", offset, blobsSize, ErrCorrupt)
	}
	return entries, nil
}

// trailerLength reads the trailer length at the end of a pack of size
// bytes whose last bytes are tail, and checks it fits.
func trailerLength(tail []byte, size int64) (int64, error) {
	if size < 4+envelopeOverhead+4 || len(tail) < 4 {
		return 0, fmt.Errorf("pack of %d bytes is too short for a trailer: %w", size, ErrCorrupt)
	}
	n := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if n < envelopeOverhead+4 || n > size-4 || n > envelopeOverhead+4+maxPackBlobs*trailerEntrySize {
		return 0, fmt.Errorf("pack trailer length %d does not fit a pack of %d bytes: %w", n, size, ErrCorrupt)
	}
	return n, nil
}

// parsePackTail decodes the blob list from the end of a pack: tail is the
// last len(tail) bytes of a pack of size bytes and must hold the trailer
// and its length.
func (c *crypter) parsePackTail(tail []byte, size int64) ([]blobEntry, error) {
	n, err := trailerLength(tail, size)
	if err != nil {
		return nil, err
	}
	if int64(len(tail)) < n+4 {
		return nil, fmt.Errorf("pack tail of %d bytes is shorter than its trailer (%d): %w", len(tail), n+4, ErrCorrupt)
	}
	env := tail[int64(len(tail))-4-n : len(tail)-4]
	plain, err := c.openObject(kindTrailer, env)
	if err != nil {
		return nil, err
	}
	return decodeTrailer(plain, size-4-n)
}

// sealTrailer appends the sealed trailer and its length to a pack.
func (c *crypter) sealTrailer(buf []byte, entries []blobEntry) []byte {
	env := c.sealObject(kindTrailer, encodeTrailer(entries))
	buf = append(buf, env...)
	return binary.LittleEndian.AppendUint32(buf, uint32(len(env)))
}
