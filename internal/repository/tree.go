package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Tree lists every node of a snapshot, sorted by Path. It is stored as a
// TreeBlob (JSON) in a pack.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Node is one file, directory or symlink.
type Node struct {
	Path    string    `json:"path"` // slash-separated, relative, clean, never absolute or with ".."
	Type    string    `json:"type"` // NodeFile, NodeDir or NodeSymlink
	Mode    uint32    `json:"mode"` // permission bits
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"mtime"`
	Hash    *ID       `json:"hash,omitempty"`    // Hash of the whole file content
	Content []ID      `json:"content,omitempty"` // data blobs in order
	Target  string    `json:"target,omitempty"`  // symlink target
	Inode   uint64    `json:"inode,omitempty"`   // for the next backup's unchanged-file test; not restored
}

// Node types.
const (
	NodeFile    = "file"
	NodeDir     = "dir"
	NodeSymlink = "symlink"
)

const maxPathLength = 4096

// Validate refuses a tree that could not be restored safely: a path that
// is empty, absolute, not clean, with "..", NUL or invalid UTF-8; nodes
// out of order or duplicated; a node below a file or symlink (writing it
// would follow the symlink); a symlink whose target leaves the tree; an
// unknown type; mode bits beyond permissions. Errors wrap ErrCorrupt.
func (t *Tree) Validate() error {
	kinds := make(map[string]string, len(t.Nodes))
	prev := ""
	for i, n := range t.Nodes {
		if err := validatePath(n.Path); err != nil {
			return fmt.Errorf("tree node %d: %w", i, err)
		}
		if i > 0 && n.Path <= prev {
			if n.Path == prev {
				return fmt.Errorf("tree node %q appears twice: %w", n.Path, ErrCorrupt)
			}
			return fmt.Errorf("tree nodes not sorted: %q after %q: %w", n.Path, prev, ErrCorrupt)
		}
		prev = n.Path
		for dir := path.Dir(n.Path); dir != "."; dir = path.Dir(dir) {
			if k, ok := kinds[dir]; ok && k != NodeDir {
				return fmt.Errorf("tree node %q is below %s %q: %w", n.Path, k, dir, ErrCorrupt)
			}
		}
		if n.Mode&^0o7777 != 0 {
			return fmt.Errorf("tree node %q: mode %#o has bits beyond permissions: %w", n.Path, n.Mode, ErrCorrupt)
		}
		switch n.Type {
		case NodeFile:
			if n.Size < 0 {
				return fmt.Errorf("tree node %q: negative size: %w", n.Path, ErrCorrupt)
			}
			if n.Target != "" {
				return fmt.Errorf("tree node %q: a file with a symlink target: %w", n.Path, ErrCorrupt)
			}
		case NodeDir:
			if len(n.Content) > 0 || n.Target != "" || n.Hash != nil {
				return fmt.Errorf("tree node %q: a directory with content: %w", n.Path, ErrCorrupt)
			}
		case NodeSymlink:
			if len(n.Content) > 0 || n.Hash != nil {
				return fmt.Errorf("tree node %q: a symlink with content: %w", n.Path, ErrCorrupt)
			}
		default:
			return fmt.Errorf("tree node %q: unknown type %q: %w", n.Path, n.Type, ErrCorrupt)
		}
		kinds[n.Path] = n.Type
	}
	for _, n := range t.Nodes {
		if n.Type == NodeSymlink {
			if err := validateSymlink(n.Path, n.Target, kinds); err != nil {
				return err
			}
		}
	}
	return nil
}

func validatePath(p string) error {
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("empty path: %w", ErrCorrupt)
	case len(p) > maxPathLength:
		return fmt.Errorf("path of %d bytes: %w", len(p), ErrCorrupt)
	case !utf8.ValidString(p) || strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q has NUL or invalid UTF-8: %w", p, ErrCorrupt)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path %q: %w", p, ErrCorrupt)
	case p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q leaves the tree: %w", p, ErrCorrupt)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean: %w", p, ErrCorrupt)
	}
	return nil
}

// validateSymlink accepts a relative target that, followed from the
// link's directory, stays inside the tree. It walks the target one
// component at a time; since ".." after a symlink means the parent of
// where that symlink points, not of the symlink, a target may not pass
// through another symlink of the tree (ending at one is fine: that link is
// checked on its own). No node sits below a symlink, so the link's own
// directory is a real one.
func validateSymlink(p, target string, kinds map[string]string) error {
	if target == "" || len(target) > maxPathLength || strings.ContainsRune(target, 0) || !utf8.ValidString(target) {
		return fmt.Errorf("symlink %q: bad target %q: %w", p, target, ErrCorrupt)
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink %q: absolute target %q: %w", p, target, ErrCorrupt)
	}
	var at []string
	if dir := path.Dir(p); dir != "." {
		at = strings.Split(dir, "/")
	}
	parts := strings.Split(target, "/")
	for i, c := range parts {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return fmt.Errorf("symlink %q: target %q leaves the tree: %w", p, target, ErrCorrupt)
			}
			at = at[:len(at)-1]
		default:
			at = append(at, c)
			if kinds[strings.Join(at, "/")] == NodeSymlink && i < len(parts)-1 {
				return fmt.Errorf("symlink %q: target %q passes through another symlink: %w", p, target, ErrCorrupt)
			}
		}
	}
	return nil
}

// sortNodes orders nodes the way Validate wants them.
func sortNodes(nodes []Node) {
	slices.SortStableFunc(nodes, func(a, b Node) int { return strings.Compare(a.Path, b.Path) })
}

func encodeTree(t *Tree) ([]byte, error) {
	return json.Marshal(t)
}

func decodeTree(data []byte) (*Tree, error) {
	var t Tree
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("tree: %v: %w", err, ErrCorrupt)
	}
	if dec.More() {
		return nil, fmt.Errorf("tree: data after the JSON value: %w", ErrCorrupt)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// SaveTree validates and stores a tree as a TreeBlob; nodes out of order
// are sorted first (in a copy). Like any blob it is durable after Flush.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	sorted := &Tree{Nodes: slices.Clone(t.Nodes)}
	sortNodes(sorted.Nodes)
	if err := sorted.Validate(); err != nil {
		return ID{}, fmt.Errorf("save tree: %w", err)
	}
	data, err := encodeTree(sorted)
	if err != nil {
		return ID{}, fmt.Errorf("save tree: %w", err)
	}
	id, _, err := r.SaveBlob(ctx, TreeBlob, data)
	if err != nil {
		return ID{}, fmt.Errorf("save tree: %w", err)
	}
	return id, nil
}

// LoadTree loads, verifies and validates a tree.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	data, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	t, err := decodeTree(data)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	return t, nil
}
