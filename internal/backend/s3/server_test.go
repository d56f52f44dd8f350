package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/backendtest"
	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// These tests run against a real versitygw process (see package s3test).

func config(srv *s3test.Server, bucket, prefix string) s3.Config {
	return s3.Config{
		Location:  srv.Location(bucket, prefix),
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		// The smallest part S3 allows, so that modest objects go multipart.
		PartSize: s3.MinPartSize,
	}
}

func create(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	be, err := s3.Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func randomData(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func loadAll(ctx context.Context, be backend.Backend, h backend.Handle, off, n int64) ([]byte, error) {
	var got []byte
	err := be.Load(ctx, h, off, n, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	var n atomic.Int64
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		cfg := config(srv, "conformance", fmt.Sprintf("repo%d", n.Add(1)))
		cfg.ListPageSize = 7 // many pages for ListManyPacks
		be, err := s3.Create(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return be
	})
}

func TestMultipartRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	be := create(t, config(srv, "multipart", "repo"))
	ctx := context.Background()
	size := 3*s3.MinPartSize + 12345 // four parts, the last one short
	data := randomData(1, size)
	for name, rd := range map[string]io.Reader{
		// A plain stream is read once; a seeker is hashed first so the
		// object records its whole SHA-256.
		"stream": iotest.HalfReader(bytes.NewReader(data)),
		"seeker": bytes.NewReader(data),
	} {
		t.Run(name, func(t *testing.T) {
			h := backend.Handle{Type: backend.PackFile, Name: "ab" + name}
			if err := be.Save(ctx, h, rd, int64(size)); err != nil {
				t.Fatal(err)
			}
			fi, err := be.Stat(ctx, h)
			if err != nil || fi.Size != int64(size) {
				t.Fatalf("stat: %+v %v", fi, err)
			}
			got, err := loadAll(ctx, be, h, 0, 0)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("load: %d bytes, %v", len(got), err)
			}
			// A range across the boundary of parts 1 and 2.
			off, n := int64(s3.MinPartSize-100), int64(200)
			got, err = loadAll(ctx, be, h, off, n)
			if err != nil || !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("range: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestChecksumCatchesDamage flips a byte of a stored object behind the
// server's back: a whole-object Load fails with ErrChecksum (retryable, so
// a retry downloads again) rather than handing the damaged data to fn as
// good.
func TestChecksumCatchesDamage(t *testing.T) {
	srv := s3test.Start(t)
	be := create(t, config(srv, "damage", "repo"))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		rd   func([]byte) io.Reader
	}{
		{"ab00single", 100000, func(d []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(d)) }},
		{"ab01multipart", 2*s3.MinPartSize + 7, func(d []byte) io.Reader { return bytes.NewReader(d) }},
	} {
		h := backend.Handle{Type: backend.PackFile, Name: tc.name}
		data := randomData(2, tc.size)
		if err := be.Save(ctx, h, tc.rd(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(srv.Dir, "damage", "repo", "data", "ab", tc.name)
		stored, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the object is not where the layout says: %v", err)
		}
		stored[len(stored)/2] ^= 0x40
		if err := os.WriteFile(path, stored, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = loadAll(ctx, be, h, 0, 0)
		if !errors.Is(err, s3.ErrChecksum) || !backend.IsRetryable(err) {
			t.Fatalf("%s: load of a damaged object: %v, want a retryable ErrChecksum", tc.name, err)
		}
	}
}

func TestOpenMissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	_, err := s3.Open(context.Background(), config(srv, "nobucket", ""))
	if !errors.Is(err, s3.ErrNoBucket) || backend.IsRetryable(err) {
		t.Fatalf("open of a missing bucket: %v", err)
	}
	// Create makes it; Open then works.
	create(t, config(srv, "nobucket", ""))
	be, err := s3.Open(context.Background(), config(srv, "nobucket", ""))
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
}

func TestCreateRefusesForeignData(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	// Someone's objects under the prefix, but no repository config.
	other := create(t, config(srv, "shared", "theirs"))
	if err := other.Save(ctx, backend.Handle{Type: backend.SnapshotFile, Name: "x1"}, bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Create(ctx, config(srv, "shared", "theirs")); err == nil {
		t.Fatal("create over a prefix holding foreign objects succeeded")
	}
	// A repository (config present) is accepted: the repository layer
	// refuses to initialise it twice.
	if err := other.Save(ctx, backend.Handle{Type: backend.ConfigFile}, bytes.NewReader([]byte("c")), 1); err != nil {
		t.Fatal(err)
	}
	create(t, config(srv, "shared", "theirs"))
	// A sibling prefix is empty: fine.
	create(t, config(srv, "shared", "mine"))
}

func TestLocationHasNoSecrets(t *testing.T) {
	srv := s3test.Start(t)
	be := create(t, config(srv, "loc", "a/b"))
	if be.Location() != srv.Location("loc", "a/b") {
		t.Fatalf("location %q", be.Location())
	}
	if be.CredentialsSource() != "config" {
		t.Fatalf("credentials from %q", be.CredentialsSource())
	}
}
