package repository

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSnapshotsFindRemove(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	treeID, _ := r.SaveTree(ctx, &Tree{})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var saved []*Snapshot
	for i := range 20 {
		s := &Snapshot{Time: base.Add(time.Duration(i) * time.Hour), Host: "h", Kind: "hot", Tree: treeID,
			Tags: []string{"nightly"}, Meta: map[string]string{"generation": string(rune('a' + i))},
			Summary: &Summary{Files: i, Bytes: int64(i) * 100, Duration: time.Second}}
		if i > 0 {
			s.Parent = &saved[i-1].ID
		}
		if _, err := r.SaveSnapshot(ctx, s); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, s)
	}
	r2 := reopen(t, be)
	all, err := r2.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 20 || !all[0].Time.Equal(base) || all[19].ID != saved[19].ID {
		t.Fatalf("snapshots not oldest first: %d", len(all))
	}
	if *all[5].Parent != saved[4].ID || all[5].Summary.Files != 5 || all[5].Meta["generation"] != "f" {
		t.Fatalf("snapshot fields lost: %+v", all[5])
	}
	latest, err := r2.FindSnapshot(ctx, "latest")
	if err != nil || latest.ID != saved[19].ID {
		t.Fatalf("latest = %v, %v", latest, err)
	}
	full, err := r2.FindSnapshot(ctx, saved[3].ID.String())
	if err != nil || full.ID != saved[3].ID {
		t.Fatalf("by full id: %v", err)
	}
	short, err := r2.FindSnapshot(ctx, strings.ToUpper(saved[7].ID.String()[:10]))
	if err != nil || short.ID != saved[7].ID {
		t.Fatalf("by prefix: %v", err)
	}
	// With 20 snapshots some pair shares its first hex digit.
	first := map[byte]int{}
	for _, s := range saved {
		first[s.ID.String()[0]]++
	}
	for c, n := range first {
		if n > 1 {
			if _, err := r2.FindSnapshot(ctx, string(c)); !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("ambiguous prefix %c: %v", c, err)
			}
			break
		}
	}
	for _, ref := range []string{"nothing", "ffffffffffff0000", ""} {
		if _, err := r2.FindSnapshot(ctx, ref); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("find %q: %v, want ErrNotFound", ref, err)
		}
	}
	if err := r2.RemoveSnapshot(ctx, saved[19].ID); err != nil {
		t.Fatal(err)
	}
	if err := r2.RemoveSnapshot(ctx, saved[19].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	latest, _ = r2.FindSnapshot(ctx, "latest")
	if latest.ID != saved[18].ID {
		t.Fatal("latest after removing the newest")
	}
	ids := []ID{}
	for _, s := range all {
		ids = append(ids, s.ID)
	}
	if !slices.Contains(ids, saved[0].ID) {
		t.Fatal("first snapshot missing")
	}
}

func TestLatestOfEmptyRepository(t *testing.T) {
	r, _ := newTestRepo(t)
	if _, err := r.FindSnapshot(context.Background(), "latest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest of nothing: %v", err)
	}
}

// A snapshot file renamed (or replaced) does not pass as another snapshot:
// its name must be the hash of its content.
func TestSnapshotNameVerified(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	s := backupFiles(t, r, []testFile{{"a", [][]byte{randomBlob(1, 100)}}})
	var data []byte
	be.Corrupt(snapshotHandle(s.ID), func(b []byte) []byte { data = b; return b })
	other := Hash([]byte("other"))
	if err := saveBytes(ctx, be, snapshotHandle(other), data); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadSnapshot(ctx, other); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("renamed snapshot: %v, want ErrCorrupt", err)
	}
}
