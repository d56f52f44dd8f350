package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The layout of a Bolt state file (docs/state.md is the reference). Bucket
// and key names are part of the on-disk format: renaming one needs a
// migration.
var (
	// bucketMeta holds the store's own metadata: schema_version, whose
	// encoding (checksum + decimal ASCII) is frozen for every version so
	// that any binary can tell a file is too new for it.
	bucketMeta = []byte("meta")
	// bucketDeployments maps a deployment name to its record envelope.
	bucketDeployments = []byte("deployments")
	// bucketRevisions holds one nested bucket per deployment: 8-byte
	// big-endian revision number → revision envelope.
	bucketRevisions = []byte("revisions")
	// bucketEvents holds one nested bucket per deployment: 8-byte
	// big-endian sequence (the nested bucket's own sequence) → event.
	bucketEvents = []byte("events")
	// bucketController holds PutMeta's values, kept apart from bucketMeta
	// so no caller key can shadow schema_version.
	bucketController = []byte("controller")

	keySchemaVersion = []byte("schema_version")
)

// recordEnvelope is a record as stored; the name is the key.
type recordEnvelope struct {
	ResourceVersion int64     `json:"resourceVersion"`
	Revision        int64     `json:"revision"`
	Updated         time.Time `json:"updated"`
	Data            []byte    `json:"data"`
}

// revisionEnvelope is a revision as stored; the deployment is the nested
// bucket's name and the number is also the key.
type revisionEnvelope struct {
	Number  int64     `json:"number"`
	Created time.Time `json:"created"`
	Data    []byte    `json:"data"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumSize is the length of the CRC32C that prefixes every value.
const checksumSize = 4

// seal prefixes payload with the CRC32C of key and payload. The key is in
// the sum so that a value which lands under the wrong key (a misdirected
// write, a damaged branch page) fails verification too.
func seal(key, payload []byte) []byte {
	out := make([]byte, checksumSize+len(payload))
	binary.BigEndian.PutUint32(out, sum(key, payload))
	copy(out[checksumSize:], payload)
	return out
}

// unseal verifies a sealed value and returns its payload, which aliases
// value (and so bbolt's memory map): copy it before the transaction ends.
func unseal(key, value []byte) ([]byte, error) {
	if len(value) < checksumSize {
		return nil, fmt.Errorf("value of %d bytes is shorter than its checksum", len(value))
	}
	stored := binary.BigEndian.Uint32(value)
	payload := value[checksumSize:]
	if got := sum(key, payload); got != stored {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", stored, got)
	}
	return payload, nil
}

func sum(key, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, payload)
}

// itob encodes revision numbers and event sequences so that bbolt's byte
// order is numeric order.
func itob(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func btoi(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("key of %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// errForeignFile: a valid bbolt file that is not a Bulwark state file.
var errForeignFile = errors.New("not a bulwark state file")

// readSchemaVersion returns the file's schema version: 0 for a file with no
// buckets at all (new), an error for a bbolt file that is someone else's.
func readSchemaVersion(tx *bolt.Tx) (int, error) {
	mb := tx.Bucket(bucketMeta)
	if mb == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return 0, fmt.Errorf("%w: it has a bucket %q and no %q bucket", errForeignFile, k, bucketMeta)
		}
		return 0, nil
	}
	v := mb.Get(keySchemaVersion)
	if v == nil {
		return 0, fmt.Errorf("meta/%s is missing", keySchemaVersion)
	}
	p, err := unseal(keySchemaVersion, v)
	if err != nil {
		return 0, fmt.Errorf("meta/%s: %w", keySchemaVersion, err)
	}
	n, err := strconv.Atoi(string(p))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("meta/%s: %q is not a schema version", keySchemaVersion, p)
	}
	return n, nil
}

func writeSchemaVersion(tx *bolt.Tx, version int) error {
	mb, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return mb.Put(keySchemaVersion, seal(keySchemaVersion, []byte(strconv.Itoa(version))))
}
