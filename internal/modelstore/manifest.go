package modelstore

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// ManifestSchema is the version of the manifest format.
const ManifestSchema = 1

// Manifest describes one model version.
type Manifest struct {
	Schema  int       `json:"schema"`
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	// Primary is the artifact a runtime loads; one of Files.
	Primary string      `json:"primary"`
	Inputs  []IOSpec    `json:"inputs"`
	Outputs []IOSpec    `json:"outputs"`
	Files   []FileEntry `json:"files"`
	// Source is the base name of the file that was pushed, for people.
	Source string `json:"source,omitempty"`
}

// IOSpec is one input or output: datatype by its protocol name, -1 for a
// dynamic dimension.
type IOSpec struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// FileEntry is one stored file with its checksum.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Size is the total size of the version's files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Ref is "name:version".
func (m *Manifest) Ref() string { return m.Name + ":" + m.Version }

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName checks a model name or version: letters, digits, '.', '_' and
// '-', starting with a letter or digit. This keeps every name a single safe
// path component.
func ValidateName(kind, s string) error {
	if !namePattern.MatchString(s) {
		return fmt.Errorf("invalid %s %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, s)
	}
	return nil
}

func decodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Schema != ManifestSchema {
		return nil, fmt.Errorf("manifest schema %d is not supported (want %d)", m.Schema, ManifestSchema)
	}
	if err := ValidateName("model name", m.Name); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := ValidateName("version", m.Version); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	found := false
	for _, f := range m.Files {
		if err := ValidateName("file name", f.Path); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if f.Path == m.Primary {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("manifest: primary file %q is not listed", m.Primary)
	}
	return &m, nil
}
