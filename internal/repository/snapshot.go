package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Snapshot is one backup: its metadata and the tree of everything it
// holds. Every snapshot references all of its content, so it restores on
// its own whatever happens to its parent; Parent only records which
// snapshot the backup was compared with.
type Snapshot struct {
	ID          ID                `json:"-"`
	Time        time.Time         `json:"time"`
	Host        string            `json:"host"`
	Tags        []string          `json:"tags,omitempty"`
	Parent      *ID               `json:"parent,omitempty"`
	Kind        string            `json:"kind"`         // "hot" or "cold"
	SiteVersion string            `json:"site_version"` // bulwark version that made it
	Tree        ID                `json:"tree"`
	Meta        map[string]string `json:"meta,omitempty"` // site facts: state generation, deployments, models...
	Summary     *Summary          `json:"summary,omitempty"`
}

// Summary is what a backup did.
type Summary struct {
	Files    int           `json:"files"`
	Bytes    int64         `json:"bytes"`
	NewBlobs int           `json:"new_blobs"`
	NewBytes int64         `json:"new_bytes"` // after compression
	Duration time.Duration `json:"duration"`
}

const maxSnapshotSize = 16 << 20

func decodeSnapshot(plain []byte) (*Snapshot, error) {
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
	}
	if dec.More() {
		return nil, fmt.Errorf("snapshot: data after the JSON value: %w", ErrCorrupt)
	}
	if s.Tree.IsZero() {
		return nil, fmt.Errorf("snapshot has no tree: %w", ErrCorrupt)
	}
	return &s, nil
}

// SaveSnapshot stores s and sets s.ID (the Hash of its JSON). Its tree
// must be stored and flushed: a snapshot never points at data that is not
// durable. It refuses if a lock this repository holds was lost.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	if err := r.checkLocks(); err != nil {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	r.mu.Lock()
	_, ok := r.idx.lookup(blobKey{TreeBlob, s.Tree})
	r.mu.Unlock()
	if !ok {
		return ID{}, fmt.Errorf("save snapshot: tree %s is not stored (save it and call Flush first): %w", s.Tree.Short(), ErrNotFound)
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	id := Hash(plain)
	err = saveBytes(ctx, r.be, backend.Handle{Type: backend.SnapshotFile, Name: id.String()}, r.crypt.sealObject(kindSnapshot, plain))
	if err != nil && !errors.Is(err, backend.ErrExists) {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	s.ID = id
	return id, nil
}

// LoadSnapshot loads and verifies one snapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	data, err := loadFile(ctx, r.be, backend.Handle{Type: backend.SnapshotFile, Name: id.String()}, maxSnapshotSize)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	plain, err := r.crypt.openObject(kindSnapshot, data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	if got := Hash(plain); got != id {
		return nil, fmt.Errorf("snapshot %s: content hashes to %s: %w", id.Short(), got.Short(), ErrCorrupt)
	}
	s, err := decodeSnapshot(plain)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	s.ID = id
	return s, nil
}

func (r *Repository) snapshotIDs(ctx context.Context) ([]ID, error) {
	names, err := listNames(ctx, r.be, backend.SnapshotFile)
	if err != nil {
		return nil, err
	}
	ids := make([]ID, 0, len(names))
	for name := range names {
		id, err := ParseID(name)
		if err != nil {
			r.log.Warn("ignoring snapshot file with a bad name", "name", name)
			continue
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, ID.Compare)
	return ids, nil
}

// Snapshots loads every snapshot, oldest first. One that cannot be read
// fails the call: a listing must not silently omit a backup.
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	snaps := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids))
	parallel(ctx, len(ids), 4, func(i int) {
		snaps[i], errs[i] = r.LoadSnapshot(ctx, ids[i])
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sortSnapshots(snaps)
	return snaps, nil
}

func sortSnapshots(snaps []*Snapshot) {
	slices.SortFunc(snaps, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
}

// FindSnapshot resolves "latest" (the newest), a full id or a unique id
// prefix. No match gives ErrNotFound, several ErrAmbiguous.
func (r *Repository) FindSnapshot(ctx context.Context, ref string) (*Snapshot, error) {
	if ref == "latest" {
		snaps, err := r.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		if len(snaps) == 0 {
			return nil, fmt.Errorf("latest snapshot: the repository has none: %w", ErrNotFound)
		}
		return snaps[len(snaps)-1], nil
	}
	ref = strings.ToLower(ref)
	if id, err := ParseID(ref); err == nil {
		return r.LoadSnapshot(ctx, id)
	}
	if ref == "" || len(ref) > 64 || strings.Trim(ref, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("snapshot %q: not \"latest\" or a hex id: %w", ref, ErrNotFound)
	}
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	var found []ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), ref) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("snapshot %s: %w", ref, ErrNotFound)
	case 1:
		return r.LoadSnapshot(ctx, found[0])
	}
	return nil, fmt.Errorf("snapshot %s matches %d snapshots: %w", ref, len(found), ErrAmbiguous)
}

// RemoveSnapshot deletes a snapshot file; its data stays until prune.
func (r *Repository) RemoveSnapshot(ctx context.Context, id ID) error {
	err := r.be.Remove(ctx, backend.Handle{Type: backend.SnapshotFile, Name: id.String()})
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("remove snapshot %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove snapshot %s: %w", id.Short(), err)
	}
	return nil
}
