package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FileType names a group of files; each group is a directory (or key
// prefix) of its own.
type FileType string

// The file types of a repository.
const (
	ConfigFile   FileType = "config"    // the single repository config; its Name is empty
	KeyFile      FileType = "keys"      // password-wrapped master keys
	PackFile     FileType = "data"      // pack files of encrypted blobs
	IndexFile    FileType = "index"     // which blob is where
	SnapshotFile FileType = "snapshots" // snapshot manifests
	LockFile     FileType = "locks"     // lease locks
)

// FileTypes lists every file type, in the order a layout is created.
var FileTypes = []FileType{ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile}

// Valid reports whether t is one of the known file types.
func (t FileType) Valid() error {
	for _, known := range FileTypes {
		if t == known {
			return nil
		}
	}
	return fmt.Errorf("%w: unknown file type %q", ErrInvalidHandle, t)
}

// Handle names one file.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return string(ConfigFile)
	}
	return string(h.Type) + "/" + h.Name
}

// Valid reports whether h can name a file: a known type and, except for the
// config, a name of letters, digits, '-' and '_' that does not start with
// '.' (backends keep such names for their temporary files). Pack names are
// at least two characters long: backends may use the first two as a
// subdirectory.
func (h Handle) Valid() error {
	if err := h.Type.Valid(); err != nil {
		return err
	}
	if h.Type == ConfigFile {
		if h.Name != "" {
			return fmt.Errorf("%w: the config handle has no name, got %q", ErrInvalidHandle, h.Name)
		}
		return nil
	}
	if h.Name == "" || len(h.Name) > 200 {
		return fmt.Errorf("%w: %s: name must be 1 to 200 characters", ErrInvalidHandle, h.Type)
	}
	if h.Type == PackFile && len(h.Name) < 2 {
		return fmt.Errorf("%w: pack name %q shorter than 2 characters", ErrInvalidHandle, h.Name)
	}
	for _, c := range h.Name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("%w: name %q has character %q", ErrInvalidHandle, h.Name, c)
		}
	}
	return nil
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

var (
	// ErrNotFound: Load, Stat or Remove of a file that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Save of a name that already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalidHandle: a handle with an unknown type or a name a backend
	// cannot store.
	ErrInvalidHandle = errors.New("invalid handle")
	// ErrShortFile: Load of a range that goes past the end of the file.
	ErrShortFile = errors.New("range past end of file")
)

// Backend stores the files of one repository. See the package
// documentation for the contract shared by all methods.
type Backend interface {
	// Location describes where the files are, for messages (never with
	// credentials).
	Location() string
	// Save stores rd (exactly size bytes) under h atomically: afterwards
	// the file is complete or absent, never partial. A reader that ends
	// early or has more than size bytes fails the Save and stores nothing.
	// A name that exists gives ErrExists.
	Save(ctx context.Context, h Handle, rd io.Reader, size int64) error
	// Load calls fn with a reader of length bytes from offset (length 0:
	// to the end). fn's error is returned. A range past the end of the
	// file gives ErrShortFile before fn is called. fn must not keep the
	// reader after it returns.
	Load(ctx context.Context, h Handle, offset, length int64, fn func(io.Reader) error) error
	// Stat reports the size of a stored file.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for every complete file of type t, in no particular
	// order; fn's error stops the listing and is returned. For ConfigFile
	// it reports the config (with an empty name) if it exists.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	// Remove deletes a file; a missing one gives ErrNotFound.
	Remove(ctx context.Context, h Handle) error
	// Close releases the backend's resources; it does not wait for calls
	// in progress.
	Close() error
}

type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// Retryable marks err as transient: a retry of the same call may succeed
// (timeouts, 5xx answers, throttling, dropped connections). nil stays nil.
func Retryable(err error) error {
	if err == nil || IsRetryable(err) {
		return err
	}
	return retryableError{err}
}

// IsRetryable reports whether err, or an error it wraps, was marked with
// Retryable. A retry loop must still stop when its own context is done.
func IsRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}

// IsTemporaryName reports whether a stored name is one of a backend's
// temporary files (a Save in progress or a crashed one), which List skips.
func IsTemporaryName(name string) bool { return strings.HasPrefix(name, ".") }
