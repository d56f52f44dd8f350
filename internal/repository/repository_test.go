package repository

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
)

func TestInitOpenRoundTrip(t *testing.T) {
	r, be := newTestRepo(t)
	files := []testFile{
		{"models/a/model.onnx", [][]byte{randomBlob(1, 40000), randomBlob(2, 30000)}},
		{"models/b/weights.safetensors", [][]byte{randomBlob(3, 100000), bytes.Repeat([]byte("compressible "), 5000)}},
		{"state/controller.db", [][]byte{randomBlob(1, 40000)}}, // dedup with the first chunk
		{"empty", nil},
	}
	s := backupFiles(t, r, files)

	r2 := reopen(t, be)
	if r2.Config() != r.Config() {
		t.Fatalf("config after reopen = %+v, want %+v", r2.Config(), r.Config())
	}
	got, err := r2.LoadSnapshot(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tree != s.Tree || got.Kind != "cold" {
		t.Fatalf("snapshot = %+v", got)
	}
	for _, f := range files {
		data, err := restoreFile(t, r2, got, f.path)
		if err != nil {
			t.Fatalf("restore %s: %v", f.path, err)
		}
		if !bytes.Equal(data, fileData(f)) {
			t.Fatalf("restore %s: %d bytes differ from the %d backed up", f.path, len(data), len(fileData(f)))
		}
	}
}

func TestSaveBlobDeduplicates(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	data := randomBlob(7, 5000)
	id, stored, err := r.SaveBlob(ctx, DataBlob, data)
	if err != nil || !stored {
		t.Fatalf("first save: stored=%v err=%v", stored, err)
	}
	if _, stored, _ := r.SaveBlob(ctx, DataBlob, data); stored {
		t.Fatal("second save of the same data stored it again")
	}
	// The same bytes as a tree blob are a different blob.
	if _, stored, _ := r.SaveBlob(ctx, TreeBlob, data); !stored {
		t.Fatal("tree blob with a data blob's content not stored")
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, be)
	if !r2.HasBlob(DataBlob, id) {
		t.Fatal("blob unknown after reopen")
	}
	if stored, err := r2.SaveBlobWithID(ctx, DataBlob, id, data); err != nil || stored {
		t.Fatalf("save after reopen: stored=%v err=%v", stored, err)
	}
}

func TestCompressionOnlyWhenItShrinks(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	text := bytes.Repeat([]byte("tensor weights "), 4000)
	noise := randomBlob(9, 60000)
	idText, _, _ := r.SaveBlob(ctx, DataBlob, text)
	idNoise, _, _ := r.SaveBlob(ctx, DataBlob, noise)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id         ID
		raw        int
		compressed bool
	}{{idText, len(text), true}, {idNoise, len(noise), false}} {
		loc, ok := r.idx.lookup(blobKey{DataBlob, c.id})
		if !ok {
			t.Fatal("blob not indexed")
		}
		e := loc.entry()
		if got := e.Flags&flagCompressed != 0; got != c.compressed {
			t.Fatalf("blob of %d bytes: compressed=%v, want %v (stored %d)", c.raw, got, c.compressed, e.Length)
		}
		if !c.compressed && e.Length != uint32(c.raw)+blobOverhead {
			t.Fatalf("incompressible blob stored in %d bytes, want %d", e.Length, c.raw+blobOverhead)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	_, be := newTestRepo(t)
	_, err := OpenWithOptions(context.Background(), be, "not the password", testOptions())
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("open with a wrong password: %v, want ErrWrongPassword", err)
	}
}

func TestInitRefusesExistingRepository(t *testing.T) {
	_, be := newTestRepo(t)
	_, err := InitWithOptions(context.Background(), be, "other", testOptions())
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v, want ErrExists", err)
	}
	reopen(t, be) // the first repository still opens
}

func TestOpenEmptyBackend(t *testing.T) {
	_, err := OpenWithOptions(context.Background(), mem.New(), testPassword, testOptions())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of an empty backend: %v, want ErrNotFound", err)
	}
}

// A config written by a newer format is refused before any key is tried
// (the version header is plaintext).
func TestUnknownFormatVersionRefused(t *testing.T) {
	_, be := newTestRepo(t)
	be.Corrupt(backend.Handle{Type: backend.ConfigFile}, func(b []byte) []byte {
		b[4] = FormatVersion + 1
		return b
	})
	_, err := OpenWithOptions(context.Background(), be, "any password at all", testOptions())
	if !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("open of a version %d repository: %v, want ErrUnsupportedFormat", FormatVersion+1, err)
	}
}

func TestConfigTamperingDetected(t *testing.T) {
	_, be := newTestRepo(t)
	be.Corrupt(backend.Handle{Type: backend.ConfigFile}, func(b []byte) []byte {
		b[len(b)-20] ^= 1
		return b
	})
	_, err := OpenWithOptions(context.Background(), be, testPassword, testOptions())
	if err == nil {
		t.Fatal("open of a repository with a damaged config succeeded")
	}
}

func TestLoadBlobDetectsCorruption(t *testing.T) {
	r, be := newTestRepo(t)
	ctx := context.Background()
	id, _, _ := r.SaveBlob(ctx, DataBlob, randomBlob(11, 3000))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc, _ := r.idx.lookup(blobKey{DataBlob, id})
	be.Corrupt(backend.Handle{Type: backend.PackFile, Name: loc.pack.ID.String()}, func(b []byte) []byte {
		b[loc.entry().Offset+100] ^= 0x10
		return b
	})
	_, err := r.LoadBlob(ctx, DataBlob, id)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("load of a flipped blob: %v, want ErrCorrupt", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(loc.pack.ID.String())) {
		t.Fatalf("error %q does not name the pack", err)
	}
}

func TestLoadBlobNotFound(t *testing.T) {
	r, _ := newTestRepo(t)
	if _, err := r.LoadBlob(context.Background(), DataBlob, Hash([]byte("nothing"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("load of an unknown blob: %v, want ErrNotFound", err)
	}
}

func TestSaveSnapshotNeedsFlushedTree(t *testing.T) {
	r, _ := newTestRepo(t)
	ctx := context.Background()
	treeID, err := r.SaveTree(ctx, &Tree{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.SaveSnapshot(ctx, &Snapshot{Tree: treeID})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot before Flush: %v, want a refusal", err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveSnapshot(ctx, &Snapshot{Tree: treeID}); err != nil {
		t.Fatal(err)
	}
}

// An index file written by a newer format (valid name, unknown version)
// makes Open refuse rather than half-read the repository.
func TestUnknownIndexVersionRefused(t *testing.T) {
	r, be := newTestRepo(t)
	backupFiles(t, r, []testFile{{"a", [][]byte{randomBlob(1, 100)}}})
	ctx := context.Background()
	names, err := listNames(ctx, be, backend.IndexFile)
	if err != nil || len(names) == 0 {
		t.Fatalf("index files: %v %v", names, err)
	}
	for name := range names {
		h := backend.Handle{Type: backend.IndexFile, Name: name}
		data, err := loadFile(ctx, be, h, maxIndexFileSize)
		if err != nil {
			t.Fatal(err)
		}
		data[4] = FormatVersion + 1
		if err := be.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		if err := saveBytes(ctx, be, backend.Handle{Type: backend.IndexFile, Name: Hash(data).String()}, data); err != nil {
			t.Fatal(err)
		}
		break
	}
	if _, err := OpenWithOptions(ctx, be, testPassword, testOptions()); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("open with a newer index: %v, want ErrUnsupportedFormat", err)
	}
}

// A large blob whose middle does not compress is stored raw without being
// compressed whole; one whose middle compresses is compressed.
func TestCompressSampling(t *testing.T) {
	text := bytes.Repeat([]byte("layer.weight "), 40000)
	if _, flags := compress(text, nil); flags != flagCompressed {
		t.Fatal("compressible blob not compressed")
	}
	mixed := append(bytes.Clone(text[:200000]), randomBlob(1, 300000)...)
	if _, flags := compress(mixed, nil); flags != 0 {
		t.Fatal("blob with an incompressible middle compressed")
	}
	small := randomBlob(2, 1000)
	if out, flags := compress(small, nil); flags != 0 || !bytes.Equal(out, small) {
		t.Fatal("small incompressible blob changed")
	}
}
