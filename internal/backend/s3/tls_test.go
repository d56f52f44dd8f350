package s3_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

func TestTLSWithCustomCA(t *testing.T) {
	files := s3test.GenerateTLS(t)
	srv := s3test.Start(t, s3test.Options{CertFile: files.CertFile, KeyFile: files.KeyFile})
	ctx := context.Background()

	// Without the CA the server is not trusted: a clear, permanent error.
	cfg := config(srv, "tls", "repo")
	_, err := s3.Create(ctx, cfg)
	if !errors.Is(err, s3.ErrTLS) || backend.IsRetryable(err) {
		t.Fatalf("create without the CA: %v, want a permanent ErrTLS", err)
	}
	t.Logf("without the CA: %v", err)

	cfg.CAFile = files.CAFile
	be := create(t, cfg)
	h := backend.Handle{Type: backend.PackFile, Name: "ff01"}
	data := randomData(40, s3.MinPartSize+1) // multipart over TLS too
	if err := be.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	got, err := loadAll(ctx, be, h, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load over TLS: %d bytes, %v", len(got), err)
	}
	if be.Location() != "s3:https://"+srv.Addr+"/tls/repo" {
		t.Fatalf("location %s", be.Location())
	}
}
