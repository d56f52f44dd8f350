package repository

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/crypto/argon2"
)

// A key file is plaintext JSON (so the KDF parameters are visible to any
// tool) whose data field is the master key, sealed with AES-256-GCM under
// the key Argon2id derives from a password. Everything else in the file is
// the AEAD's additional data, so editing it fails authentication. Its name
// is the Hash of its bytes.
type keyFile struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Data    []byte    `json:"data"` // nonce || ciphertext || tag of the master key JSON
}

const (
	keyFileVersion = 1
	kdfArgon2id    = "argon2id"
	maxKeyFileSize = 64 << 10
)

// additionalData is the part of a key file the master key's seal
// authenticates: every field but the sealed data, in a fixed binary form.
func (k *keyFile) additionalData() []byte {
	var b bytes.Buffer
	b.WriteString("bulwark key")
	field := func(s string) {
		binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
	}
	binary.Write(&b, binary.BigEndian, uint32(k.Version))
	field(k.Created.UTC().Format(time.RFC3339Nano))
	field(k.Host)
	field(k.User)
	field(k.KDF)
	binary.Write(&b, binary.BigEndian, []uint32{k.Params.Time, k.Params.MemoryKiB, uint32(k.Params.Threads)})
	field(string(k.Salt))
	return b.Bytes()
}

// newKeyFile wraps mk under password with params.
func newKeyFile(mk masterKey, password string, params KDFParams, host, user string) ([]byte, error) {
	if err := params.validate(); err != nil {
		return nil, fmt.Errorf("key parameters: %w", err)
	}
	k := &keyFile{
		Version: keyFileVersion, Created: time.Now().UTC(), Host: host, User: user,
		KDF: kdfArgon2id, Params: params, Salt: make([]byte, saltSize),
	}
	rand.Read(k.Salt)
	aead, err := newAEAD(deriveKey(password, k.Salt, params))
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(mk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	k.Data = aead.Seal(nonce, nonce, plain, k.additionalData())
	return json.MarshalIndent(k, "", "  ")
}

// decodeKeyFile parses and checks a key file without deriving anything.
func decodeKeyFile(data []byte) (*keyFile, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key file of %d bytes: %w", len(data), ErrCorrupt)
	}
	var k keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("key file: %v: %w", err, ErrCorrupt)
	}
	if k.Version != keyFileVersion {
		return nil, fmt.Errorf("key file version %d, this program reads %d: %w", k.Version, keyFileVersion, ErrUnsupportedFormat)
	}
	if k.KDF != kdfArgon2id {
		return nil, fmt.Errorf("key file uses KDF %q, this program knows %q: %w", k.KDF, kdfArgon2id, ErrUnsupportedFormat)
	}
	if err := k.Params.validate(); err != nil {
		return nil, fmt.Errorf("key file: %v: %w", err, ErrCorrupt)
	}
	if len(k.Salt) < saltSize || len(k.Salt) > 64 {
		return nil, fmt.Errorf("key file salt of %d bytes: %w", len(k.Salt), ErrCorrupt)
	}
	if len(k.Data) < nonceSize+tagSize {
		return nil, fmt.Errorf("key file data of %d bytes: %w", len(k.Data), ErrCorrupt)
	}
	return &k, nil
}

// open derives the password's key and unwraps the master key; a wrong
// password gives ErrWrongPassword.
func (k *keyFile) open(password string) (masterKey, error) {
	aead, err := newAEAD(deriveKey(password, k.Salt, k.Params))
	if err != nil {
		return masterKey{}, err
	}
	plain, err := aead.Open(nil, k.Data[:nonceSize], k.Data[nonceSize:], k.additionalData())
	if err != nil {
		return masterKey{}, ErrWrongPassword
	}
	var mk masterKey
	if err := json.Unmarshal(plain, &mk); err != nil {
		return masterKey{}, fmt.Errorf("master key: %v: %w", err, ErrCorrupt)
	}
	if err := mk.valid(); err != nil {
		return masterKey{}, err
	}
	return mk, nil
}

// KDFParams are the Argon2id parameters that turn a password into the key
// wrapping the master key. They are stored in each key file, so every key
// opens with the parameters it was made with.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // lanes
}

// DefaultKDF costs about 0.8 CPU-seconds, 0.4 s of wall time on two idle
// cores (BenchmarkArgon2idChoice; docs/repository-format.md has the
// numbers): slow enough that every password guess costs that much, fast
// enough for a CLI that opens the repository on each command. Memory
// stays at 64 MiB so that opening a repository never raises a backup's
// peak memory.
var DefaultKDF = KDFParams{Time: 12, MemoryKiB: 64 << 10, Threads: 2}

// The bounds a key file's parameters must keep. The upper bounds stop a
// hostile key file from making Open allocate or compute without end.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFThreads   = 64
	saltSize        = 16
)

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > maxKDFTime {
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxKDFTime)
	}
	if p.Threads < 1 || p.Threads > maxKDFThreads {
		return fmt.Errorf("argon2id threads %d outside 1..%d", p.Threads, maxKDFThreads)
	}
	if p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

func deriveKey(password string, salt []byte, p KDFParams) []byte {
	return argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}
