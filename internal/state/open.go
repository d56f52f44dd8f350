package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors of opening a Bolt store, besides ErrCorrupt.
var (
	// ErrLocked: another process (or another Bolt in this one) has the
	// file open. Two controllers writing one file would each believe they
	// own the deployments, so the second refuses instead of waiting.
	ErrLocked = errors.New("state file is in use")
	// ErrNewerSchema: the file was written by a newer bulwark. Rolling
	// its format back is never safe, so the file is left untouched.
	ErrNewerSchema = errors.New("state file has a newer schema")
)

// recoveryHint is part of every corruption message: the operator reading it
// should not need to look anything else up.
const recoveryHint = "It has not been modified. Restore it from a backup (bulwark restore --state-only, see docs/state.md) or move it aside to start empty."

// CorruptError says which state file cannot be used, why, and how to
// recover. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	Path   string
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is corrupt: %s. %s", e.Path, e.Detail, recoveryHint)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// sentinelError carries a full message and still matches its sentinel.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

func lockedError(path string) error {
	return &sentinelError{fmt.Sprintf("state file %s is in use by another controller (pid unknown); stop it or use another file", path), ErrLocked}
}

// openError classifies a bbolt open failure: a lock timeout, a plain I/O
// problem (missing, permission), or a file bbolt cannot make sense of.
func openError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return lockedError(path)
	case errors.As(err, &pe):
		return fmt.Errorf("open state file: %w", err)
	default:
		return &CorruptError{Path: path, Detail: err.Error()}
	}
}

// The bbolt meta page, format version 2, as bbolt writes it (native byte
// order, after a 16-byte page header). checkMetaPages reads it itself
// because bbolt trusts the page ids it holds: a truncated file would make
// bbolt fault on its first read past the end instead of returning an error.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaChecksumAt   = 56
	metaSize         = 64
	noFreelistPageID = ^uint64(0)
)

type boltMeta struct {
	pageSize             uint32
	root, freelist, pgid uint64
	txid                 uint64
}

func readMeta(f *os.File, off int64) (boltMeta, bool) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, false
	}
	m := buf[pageHeaderSize:]
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[metaChecksumAt:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:]),
	}, true
}

// checkMetaPages finds the meta page bbolt will use (the valid one with the
// highest transaction id) and checks that every page it accounts for lies
// inside the file.
func checkMetaPages(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open state file: %w", err)
	}
	defer f.Close()
	best, found := readMeta(f, 0)
	second := int64(os.Getpagesize())
	if found {
		second = int64(best.pageSize)
	}
	if m, ok := readMeta(f, second); ok && (!found || m.txid > best.txid) {
		best, found = m, true
	}
	if !found {
		return &CorruptError{Path: path, Detail: "no valid bbolt header (wrong magic, version or checksum in both meta pages)"}
	}
	need := int64(best.pgid) * int64(best.pageSize)
	switch {
	case best.pgid < 4 || need/int64(best.pageSize) != int64(best.pgid):
		return &CorruptError{Path: path, Detail: fmt.Sprintf("header claims %d pages", best.pgid)}
	case need > size:
		return &CorruptError{Path: path, Detail: fmt.Sprintf("file is truncated: %d bytes, its header accounts for %d", size, need)}
	case best.root >= best.pgid || (best.freelist >= best.pgid && best.freelist != noFreelistPageID):
		return &CorruptError{Path: path, Detail: "header points past the end of the file"}
	}
	return nil
}

// validate proves an existing file usable without writing to it: the
// header, a read-only bbolt open, the schema version, every value's
// checksum and bbolt's page consistency check. It returns the file's schema
// version. Before a file is migrated it also saves a copy beside it.
func validate(path string, size int64, timeout time.Duration) (version int, err error) {
	if err := checkMetaPages(path, size); err != nil {
		return 0, err
	}
	// A damaged page can send bbolt outside its memory map. Turn that
	// fault, and bbolt's own assertion panics, into ErrCorrupt; closing
	// the file releases the lock even when bbolt could not clean up.
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				file.Close()
			}
			version, err = 0, &CorruptError{Path: path, Detail: fmt.Sprint("unreadable page: ", r)}
		}
	}()
	db, err := bolt.Open(path, 0, &bolt.Options{
		ReadOnly: true,
		Timeout:  timeout,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
	})
	if err != nil {
		return 0, openError(path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		return 0, openError(path, err)
	}
	defer tx.Rollback()

	if version, err = readSchemaVersion(tx); err != nil {
		return 0, &CorruptError{Path: path, Detail: err.Error()}
	}
	if version > SchemaVersion() {
		return version, fmt.Errorf("state file %s: %w", path, errNewer(version))
	}
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error { return verifyBucket(b, string(name)) })
	if err != nil {
		return 0, &CorruptError{Path: path, Detail: err.Error()}
	}
	if err := checkPages(tx); err != nil {
		return 0, &CorruptError{Path: path, Detail: err.Error()}
	}
	if version > 0 && version < SchemaVersion() {
		backup := path + ".schema-v" + strconv.Itoa(version) + ".bak"
		err := atomicfile.Write(backup, 0o600, func(w io.Writer) error { _, err := tx.WriteTo(w); return err })
		if err != nil {
			return 0, fmt.Errorf("save %s before migrating: %w", backup, err)
		}
	}
	return version, nil
}

// verifyBucket checks the checksum of every value in b and below, so a
// damaged value is found at open, not when a reconcile first reads it.
func verifyBucket(b *bolt.Bucket, where string) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		name := where + "/" + describeKey(k)
		if v == nil {
			child := b.Bucket(k)
			if child == nil {
				return fmt.Errorf("%s: neither a value nor a bucket", name)
			}
			if err := verifyBucket(child, name); err != nil {
				return err
			}
			continue
		}
		if _, err := unseal(k, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// checkPages runs bbolt's consistency check (reachability, free list, key
// order) and reports the first few problems.
func checkPages(tx *bolt.Tx) error {
	var msgs []string
	for err := range tx.Check() {
		if len(msgs) < 3 {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("page check: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// describeKey names a key for people: text as is, 8-byte numbers as #n.
func describeKey(k []byte) string {
	printable := len(k) > 0
	for _, r := range string(k) {
		if !unicode.IsPrint(r) {
			printable = false
			break
		}
	}
	if printable {
		return string(k)
	}
	if n, err := btoi(k); err == nil {
		return "#" + strconv.FormatUint(n, 10)
	}
	return fmt.Sprintf("%x", k)
}
