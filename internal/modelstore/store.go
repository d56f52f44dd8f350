package modelstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
)

// Errors callers map to exit codes and HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrChecksum = errors.New("checksum mismatch")
	ErrInvalid  = errors.New("invalid model")
)

const (
	manifestFile = "manifest.json"
	stagingMark  = ".staging-"
)

// Inspector validates an artifact and describes it. It must return an error
// for anything the site could not serve; the store then writes nothing.
type Inspector func(ctx context.Context, path string) (format string, inputs, outputs []IOSpec, err error)

// Store is a model store rooted at a site directory. Its methods are safe
// for concurrent use by several processes: pushes race on an atomic rename.
type Store struct {
	dir string // <site>/models
}

// Open opens (creating if needed) the store in siteDir and removes staging
// directories left by interrupted pushes.
func Open(siteDir string) (*Store, error) {
	dir := filepath.Join(siteDir, "models")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open model store: %w", err)
	}
	s := &Store{dir: dir}
	s.removeStaging()
	return s, nil
}

// Dir is the directory holding the models.
func (s *Store) Dir() string { return s.dir }

func (s *Store) removeStaging() {
	models, _ := os.ReadDir(s.dir)
	for _, m := range models {
		entries, _ := os.ReadDir(filepath.Join(s.dir, m.Name()))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), stagingMark) && !stagingOwnerAlive(e.Name()) {
				os.RemoveAll(filepath.Join(s.dir, m.Name(), e.Name()))
			}
		}
	}
}

// PushOptions tune Push.
type PushOptions struct {
	// Version to create; empty picks the next integer after the highest
	// numeric version.
	Version string
	Now     func() time.Time
}

// Push validates src with inspect and stores it as a new immutable version
// of name. On any error nothing is left in the store.
func (s *Store) Push(ctx context.Context, name, src string, inspect Inspector, opt PushOptions) (*Manifest, error) {
	if err := ValidateName("model name", name); err != nil {
		return nil, err
	}
	version := opt.Version
	if version == "" {
		next, err := s.nextVersion(name)
		if err != nil {
			return nil, err
		}
		version = next
	}
	if err := ValidateName("version", version); err != nil {
		return nil, err
	}
	final := filepath.Join(s.dir, name, version)
	if _, err := os.Stat(final); err == nil {
		return nil, fmt.Errorf("model %s:%s %w; versions are immutable, push a new version", name, version, ErrExists)
	}
	modelDir := filepath.Join(s.dir, name)
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(modelDir, fmt.Sprintf("%s%d-*", stagingMark, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(staging)
		}
	}()

	primary := "model" + strings.ToLower(filepath.Ext(src))
	if err := ValidateName("file name", primary); err != nil {
		primary = "model.bin"
	}
	entry, err := copyWithChecksum(src, filepath.Join(staging, primary))
	if err != nil {
		return nil, err
	}
	// Inspect the stored copy, so what was validated is what was stored.
	format, inputs, outputs, err := inspect(ctx, filepath.Join(staging, primary))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, filepath.Base(src), err)
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	m := &Manifest{
		Schema: ManifestSchema, Name: name, Version: version, Format: format,
		Created: now().UTC(), Primary: primary, Inputs: inputs, Outputs: outputs,
		Files: []FileEntry{entry}, Source: filepath.Base(src),
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(staging, manifestFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(staging, final); err != nil {
		if errors.Is(err, fs.ErrExist) || isNotEmpty(err) {
			return nil, fmt.Errorf("model %s:%s %w", name, version, ErrExists)
		}
		return nil, fmt.Errorf("commit version: %w", err)
	}
	committed = true
	if err := atomicfile.SyncDir(modelDir); err != nil {
		return nil, err
	}
	return m, nil
}

// stagingOwnerAlive reports whether the process that created a staging
// directory (its pid is in the name) still runs, so that opening the store
// never deletes a push in progress in another process.
func stagingOwnerAlive(dirName string) bool {
	pidPart, _, _ := strings.Cut(strings.TrimPrefix(dirName, stagingMark), "-")
	pid, err := strconv.Atoi(pidPart)
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}

func isNotEmpty(err error) bool {
	var le *os.LinkError
	return errors.As(err, &le) && strings.Contains(le.Err.Error(), "not empty")
}

// copyWithChecksum copies src to dst, fsyncs it and returns its entry.
func copyWithChecksum(src, dst string) (FileEntry, error) {
	in, err := os.Open(src)
	if err != nil {
		return FileEntry{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return FileEntry{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileEntry{}, fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return FileEntry{Path: filepath.Base(dst), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *Store) nextVersion(name string) (string, error) {
	vs, err := s.Versions(name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	highest := 0
	for _, v := range vs {
		if n, err := strconv.Atoi(v); err == nil && n > highest {
			highest = n
		}
	}
	return strconv.Itoa(highest + 1), nil
}

// Names lists the models in the store, sorted.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ValidateName("model name", e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Versions lists a model's committed versions, oldest first: numeric
// versions by number, then the others by name.
func (s *Store) Versions(name string) ([]string, error) {
	if err := ValidateName("model name", name); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model %q %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var vs []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), stagingMark) && ValidateName("version", e.Name()) == nil {
			vs = append(vs, e.Name())
		}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("model %q %w", name, ErrNotFound)
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
	return vs, nil
}

func versionLess(a, b string) bool {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}

// Latest is the version served when a request names none: the highest in
// Versions order.
func (s *Store) Latest(name string) (string, error) {
	vs, err := s.Versions(name)
	if err != nil {
		return "", err
	}
	return vs[len(vs)-1], nil
}

// Manifest reads a version's manifest.
func (s *Store) Manifest(name, version string) (*Manifest, error) {
	if err := ValidateName("model name", name); err != nil {
		return nil, err
	}
	if err := ValidateName("version", version); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.dir, name, version, manifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model %s:%s %w", name, version, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("model %s:%s: %w", name, version, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("model %s:%s: manifest names %s", name, version, m.Ref())
	}
	return m, nil
}

// Path is the absolute path of one of a version's files.
func (s *Store) Path(m *Manifest, file string) string {
	return filepath.Join(s.dir, m.Name, m.Version, file)
}

// Verify reads the manifest and checks every file's size and SHA-256.
// A mismatch wraps ErrChecksum and names the file.
func (s *Store) Verify(name, version string) (*Manifest, error) {
	m, err := s.Manifest(name, version)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		sum, n, err := fileSHA256(s.Path(m, f.Path))
		if err != nil {
			return m, fmt.Errorf("model %s: %w", m.Ref(), err)
		}
		if n != f.Size || sum != f.SHA256 {
			return m, fmt.Errorf("model %s: file %s: %w (manifest: %d bytes sha256 %.12s…, disk: %d bytes sha256 %.12s…)",
				m.Ref(), f.Path, ErrChecksum, f.Size, f.SHA256, n, sum)
		}
	}
	return m, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ParseRef splits "name[:version]".
func ParseRef(ref string) (name, version string, err error) {
	name, version, _ = strings.Cut(ref, ":")
	if err := ValidateName("model name", name); err != nil {
		return "", "", err
	}
	if version != "" {
		if err := ValidateName("version", version); err != nil {
			return "", "", err
		}
	}
	return name, version, nil
}
