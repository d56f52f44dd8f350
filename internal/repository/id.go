package repository

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
)

// ID is a 32-byte content hash: of a blob's plaintext (blob ids, file
// hashes), of a file's stored bytes (pack, index and key file names) or of
// a snapshot's plaintext (snapshot ids).
type ID [32]byte

// String returns the lowercase hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex characters, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is all zeros (never a real hash in practice).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the 64-character hex form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("parse id %q: want %d hex characters, got %d", s, 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("parse id %q: %w", s, err)
	}
	return id, nil
}

// MarshalText encodes the id as hex (JSON uses it).
func (id ID) MarshalText() ([]byte, error) {
	out := make([]byte, 2*len(id))
	hex.Encode(out, id[:])
	return out, nil
}

// UnmarshalText decodes the hex form.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// Compare orders ids bytewise.
func (id ID) Compare(other ID) int { return bytes.Compare(id[:], other[:]) }

// Hash is the content hash of the repository: BLAKE3-256. It is faster
// than SHA-256 on this project's hardware for chunks of 64 KiB and more
// even with SHA-NI (docs/repository-format.md has the numbers).
func Hash(data []byte) ID { return blake3.Sum256(data) }

// NewHasher returns a streaming form of Hash; its Sum appends 32 bytes.
func NewHasher() hash.Hash { return blake3.New() }

func sumID(h hash.Hash) ID {
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// BlobType tells data blobs (file content) from tree blobs (directory
// listings); they live in separate packs.
type BlobType uint8

// The blob types.
const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

func (t BlobType) valid() bool { return t == DataBlob || t == TreeBlob }

// blob flags, stored per blob in pack trailers and index files.
const (
	flagCompressed uint8 = 1 << 0 // payload is zstd; otherwise the plaintext itself
	knownFlags           = flagCompressed
)

type blobKey struct {
	t  BlobType
	id ID
}

func (k blobKey) String() string { return k.t.String() + " blob " + k.id.Short() }

// MaxBlobSize bounds one blob's plaintext. Chunks are far smaller; trees
// of very large sites are the biggest blobs. The bound keeps a hostile
// index or trailer from making a reader allocate without limit.
const MaxBlobSize = 64 << 20
