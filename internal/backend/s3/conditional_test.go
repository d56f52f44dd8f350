package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// TestConditionalWriteRefusesOverwrite goes past Save's stat to the
// upload itself, as a racing Save would: the server's If-None-Match check
// refuses to overwrite, for single and multipart uploads alike, and the
// refused multipart upload leaves no parts behind.
func TestConditionalWriteRefusesOverwrite(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	b, err := Create(ctx, Config{Location: srv.Location("cond", ""), AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	first := bytes.Repeat([]byte("first"), 1000)
	for _, tc := range []struct {
		name string
		size int
		put  func(ctx context.Context, what, key string, data []byte) error
	}{
		{"single", 1000, func(ctx context.Context, what, key string, data []byte) error {
			return b.putSingle(ctx, what, key, bytes.NewReader(data), int64(len(data)))
		}},
		{"multipart", MinPartSize + 1, func(ctx context.Context, what, key string, data []byte) error {
			return b.putMultipart(ctx, what, key, bytes.NewReader(data), int64(len(data)))
		}},
	} {
		h := backend.Handle{Type: backend.LockFile, Name: tc.name}
		if err := b.Save(ctx, h, bytes.NewReader(first), int64(len(first))); err != nil {
			t.Fatal(err)
		}
		err := tc.put(ctx, "overwrite", b.key(h), bytes.Repeat([]byte{'x'}, tc.size))
		if !errors.Is(err, backend.ErrExists) {
			t.Fatalf("%s: overwrite: %v, want ErrExists", tc.name, err)
		}
		var got []byte
		err = b.Load(ctx, h, 0, 0, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err != nil || !bytes.Equal(got, first) {
			t.Fatalf("%s: after the refused overwrite: %d bytes, %v", tc.name, len(got), err)
		}
	}
	if !b.conditional.Load() {
		t.Fatal("the server's conditional writes were not used")
	}
	if n, err := b.AbortIncompleteUploads(ctx, 0); err != nil || n != 0 {
		t.Fatalf("%d incomplete uploads left (%v), want 0", n, err)
	}
}
