package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
)

// The routing cache is the last table a gateway applied, kept on disk so
// that a gateway started while its controller is down serves what it
// served before (static stability). It is one JSON file, written
// atomically (temp file, fsync, rename, fsync dir):
//
//	{"format": 1, "sha256": "<hex of the table's bytes>", "table": {...}}
//
// The checksum covers the table's bytes exactly as written; a file that
// fails it, or does not parse, is reported and not used.

// cacheFormat is the version of the cache file's layout.
const cacheFormat = 1

// maxCacheBytes bounds what is read: a table for thousands of replicas is
// well under it.
const maxCacheBytes = 64 << 20

// ErrCacheCorrupt marks a routing cache that fails its checksum or does
// not parse.
var ErrCacheCorrupt = errors.New("routing cache is corrupt")

// cachedTable is the cache's table: the controller's table and when the
// controller last confirmed it.
type cachedTable struct {
	Generation int64           `json:"generation"`
	Source     string          `json:"source"`
	Confirmed  time.Time       `json:"confirmed"`
	Models     json.RawMessage `json:"models"`
}

type cacheEnvelope struct {
	Format int             `json:"format"`
	SHA256 string          `json:"sha256"`
	Table  json.RawMessage `json:"table"`
}

// encodeCache is the file's bytes for t.
func encodeCache(t *cachedTable) ([]byte, error) {
	table, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(table)
	return json.Marshal(cacheEnvelope{Format: cacheFormat, SHA256: hex.EncodeToString(sum[:]), Table: table})
}

// decodeCache checks and reads a cache file's bytes.
func decodeCache(b []byte) (*cachedTable, error) {
	var env cacheEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCacheCorrupt, err)
	}
	if env.Format != cacheFormat {
		return nil, fmt.Errorf("%w: format %d, this gateway reads format %d", ErrCacheCorrupt, env.Format, cacheFormat)
	}
	sum := sha256.Sum256(env.Table)
	if hex.EncodeToString(sum[:]) != env.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCacheCorrupt)
	}
	var t cachedTable
	if err := json.Unmarshal(env.Table, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCacheCorrupt, err)
	}
	if t.Generation < 0 || len(t.Models) == 0 {
		return nil, fmt.Errorf("%w: no table in it", ErrCacheCorrupt)
	}
	return &t, nil
}

// readCache reads the cache at path; (nil, nil) when there is none.
func readCache(path string) (*cachedTable, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read routing cache: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCacheBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read routing cache %s: %w", path, err)
	}
	if len(b) > maxCacheBytes {
		return nil, fmt.Errorf("routing cache %s: %w: larger than %d bytes", path, ErrCacheCorrupt, maxCacheBytes)
	}
	t, err := decodeCache(b)
	if err != nil {
		return nil, fmt.Errorf("routing cache %s: %w", path, err)
	}
	return t, nil
}

// writeCache replaces the cache at path atomically.
func writeCache(path string, t *cachedTable) error {
	b, err := encodeCache(t)
	if err != nil {
		return fmt.Errorf("encode routing cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("routing cache directory: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write routing cache %s: %w", path, err)
	}
	return nil
}
