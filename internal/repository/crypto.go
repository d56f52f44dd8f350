package repository

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
)

// FormatVersion is the repository format this package reads and writes.
const FormatVersion = 1

// Every stored object except key files and blobs is an envelope:
//
//	magic "BLWK" | format version (1 byte) | object kind (1 byte) | nonce (12) | AES-256-GCM ciphertext and tag (16)
//
// The 6-byte header is plaintext, so an unknown format version is refused
// before any decryption, and it is the AEAD's additional data, so it
// cannot be changed without the object failing authentication.
const (
	envelopeMagic    = "BLWK"
	headerSize       = 6
	nonceSize        = 12
	tagSize          = 16
	envelopeOverhead = headerSize + nonceSize + tagSize
	blobOverhead     = nonceSize + tagSize
	keySize          = 32
)

type objectKind byte

const (
	kindConfig   objectKind = 1
	kindIndex    objectKind = 2
	kindSnapshot objectKind = 3
	kindLock     objectKind = 4
	kindTrailer  objectKind = 5
)

func (k objectKind) String() string {
	switch k {
	case kindConfig:
		return "config"
	case kindIndex:
		return "index"
	case kindSnapshot:
		return "snapshot"
	case kindLock:
		return "lock"
	case kindTrailer:
		return "pack trailer"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// masterKey is what every key file wraps. Encrypt keys the AEAD of every
// object. MAC is reserved for keyed ids and keyed chunking in a later
// format version: generated now so that repositories made today have it.
type masterKey struct {
	Encrypt []byte `json:"encrypt"`
	MAC     []byte `json:"mac"`
}

func newMasterKey() masterKey {
	k := masterKey{Encrypt: make([]byte, keySize), MAC: make([]byte, keySize)}
	rand.Read(k.Encrypt)
	rand.Read(k.MAC)
	return k
}

func (k masterKey) valid() error {
	if len(k.Encrypt) != keySize || len(k.MAC) != keySize {
		return fmt.Errorf("master key has %d+%d bytes, want %d+%d: %w", len(k.Encrypt), len(k.MAC), keySize, keySize, ErrCorrupt)
	}
	return nil
}

// crypter seals and opens objects and blobs under the master key with
// AES-256-GCM and random 96-bit nonces.
type crypter struct {
	aead cipher.AEAD
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func newCrypter(k masterKey) (*crypter, error) {
	aead, err := newAEAD(k.Encrypt)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &crypter{aead: aead}, nil
}

func envelopeHeader(kind objectKind) []byte {
	return []byte{'B', 'L', 'W', 'K', FormatVersion, byte(kind)}
}

// checkHeader validates an envelope's plaintext header: the magic, the
// format version (ErrUnsupportedFormat when unknown) and the kind.
func checkHeader(data []byte, kind objectKind) error {
	if len(data) < headerSize || string(data[:4]) != envelopeMagic {
		return fmt.Errorf("%s: no bulwark header: %w", kind, ErrCorrupt)
	}
	if data[4] != FormatVersion {
		return fmt.Errorf("%s has format version %d, this program reads version %d (upgrade bulwark): %w", kind, data[4], FormatVersion, ErrUnsupportedFormat)
	}
	if objectKind(data[5]) != kind {
		return fmt.Errorf("expected a %s, found a %s: %w", kind, objectKind(data[5]), ErrCorrupt)
	}
	return nil
}

func (c *crypter) sealObject(kind objectKind, plaintext []byte) []byte {
	out := make([]byte, 0, envelopeOverhead+len(plaintext))
	out = append(out, envelopeHeader(kind)...)
	nonce := out[headerSize : headerSize+nonceSize]
	rand.Read(nonce)
	out = out[:headerSize+nonceSize]
	return c.aead.Seal(out, nonce, plaintext, out[:headerSize])
}

func (c *crypter) openObject(kind objectKind, data []byte) ([]byte, error) {
	if err := checkHeader(data, kind); err != nil {
		return nil, err
	}
	if len(data) < envelopeOverhead {
		return nil, fmt.Errorf("%s: %d bytes, too short: %w", kind, len(data), ErrCorrupt)
	}
	nonce := data[headerSize : headerSize+nonceSize]
	plain, err := c.aead.Open(nil, nonce, data[headerSize+nonceSize:], data[:headerSize])
	if err != nil {
		return nil, fmt.Errorf("%s: authentication failed (damaged, or not this repository's): %w", kind, ErrCorrupt)
	}
	return plain, nil
}

// blobAAD binds a sealed blob to its type, flags and id, so a ciphertext
// cannot be passed off as another blob or lose its compression flag.
func blobAAD(t BlobType, flags uint8, id ID) []byte {
	aad := make([]byte, 2+len(id))
	aad[0], aad[1] = byte(t), flags
	copy(aad[2:], id[:])
	return aad
}

// sealBlob appends nonce || ciphertext || tag of payload to dst.
func (c *crypter) sealBlob(dst []byte, t BlobType, flags uint8, id ID, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	nonce := dst[start:]
	rand.Read(nonce)
	return c.aead.Seal(dst, nonce, payload, blobAAD(t, flags, id))
}

// openBlob authenticates and decrypts a sealed blob. With inPlace the
// plaintext overwrites the ciphertext (no allocation; the caller's buffer
// is consumed).
func (c *crypter) openBlob(sealed []byte, t BlobType, flags uint8, id ID, inPlace bool) ([]byte, error) {
	if len(sealed) < blobOverhead {
		return nil, fmt.Errorf("sealed blob of %d bytes is too short: %w", len(sealed), ErrCorrupt)
	}
	var dst []byte
	if inPlace {
		dst = sealed[nonceSize:nonceSize]
	}
	plain, err := c.aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], blobAAD(t, flags, id))
	if err != nil {
		return nil, fmt.Errorf("authentication failed: %w", ErrCorrupt)
	}
	return plain, nil
}
