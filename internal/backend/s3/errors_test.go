package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

func TestClassify(t *testing.T) {
	b := &Backend{loc: Location{Endpoint: "s3.example:9000", Bucket: "bkt"}}
	resp := func(code string, status int) error {
		return fmt.Errorf("wrapped: %w", minio.ErrorResponse{Code: code, StatusCode: status, Message: "msg"})
	}
	type want struct {
		is        error // errors.Is target, or nil
		retryable bool
		text      string
	}
	cases := []struct {
		err  error
		want want
	}{
		{resp("NoSuchKey", 404), want{backend.ErrNotFound, false, ""}},
		{resp("NotFound", 404), want{backend.ErrNotFound, false, ""}},
		{resp("NoSuchBucket", 404), want{ErrNoBucket, false, "bkt"}},
		{resp("PreconditionFailed", 412), want{backend.ErrExists, false, ""}},
		{resp("InvalidAccessKeyId", 403), want{ErrAuth, false, "access key is not known"}},
		{resp("XAdminUserNotFound", 404), want{ErrAuth, false, "access key is not known"}},
		{resp("SignatureDoesNotMatch", 403), want{ErrAuth, false, "secret key is wrong"}},
		{resp("AccessDenied", 403), want{ErrAuth, false, "access denied"}},
		{resp("RequestTimeTooSkewed", 403), want{ErrAuth, false, "clock"}},
		{resp("", 403), want{ErrAuth, false, ""}},
		{resp("SlowDown", 503), want{nil, true, "SlowDown"}},
		{resp("InternalError", 500), want{nil, true, ""}},
		{resp("BadDigest", 400), want{nil, true, ""}},
		{resp("Whatever", 502), want{nil, true, "HTTP 502"}},
		{resp("", 429), want{nil, true, ""}},
		{resp("InvalidArgument", 400), want{nil, false, "InvalidArgument"}},
		{resp("NotImplemented", 501), want{nil, false, "does not implement"}},
		{&url.Error{Op: "Put", URL: "http://x", Err: syscall.ECONNREFUSED}, want{nil, true, "connection refused"}},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, want{nil, true, ""}},
		{io.ErrUnexpectedEOF, want{nil, true, ""}},
		{&url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, want{ErrTLS, false, "CA"}},
		{errors.New("http: server gave HTTP response to HTTPS client"), want{ErrTLS, false, "s3:http://"}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		got := b.classify(ctx, "stat data/ab", tc.err)
		if tc.want.is != nil && !errors.Is(got, tc.want.is) {
			t.Errorf("%v: got %v, want it to wrap %v", tc.err, got, tc.want.is)
		}
		if backend.IsRetryable(got) != tc.want.retryable {
			t.Errorf("%v: retryable = %v, want %v (%v)", tc.err, backend.IsRetryable(got), tc.want.retryable, got)
		}
		if !strings.Contains(got.Error(), tc.want.text) || !strings.HasPrefix(got.Error(), "stat data/ab: ") {
			t.Errorf("%v: message %q should start with the operation and mention %q", tc.err, got, tc.want.text)
		}
	}
}

func TestClassifyEndedContext(t *testing.T) {
	b := &Backend{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Whatever the transport reports once the caller gave up, the answer is
	// the context's error and never retryable.
	got := b.classify(ctx, "load x", &url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNRESET})
	if !errors.Is(got, context.Canceled) || backend.IsRetryable(got) {
		t.Fatalf("got %v", got)
	}
	if b.classify(ctx, "x", nil) != nil {
		t.Fatal("nil error classified as an error")
	}
}
