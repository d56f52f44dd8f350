package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

var (
	// ErrAuth: the server refused the credentials or the request's
	// signature, or denied access. Permanent: fix the keys, the clock or the
	// bucket policy.
	ErrAuth = errors.New("s3 authentication failed")
	// ErrNoBucket: the location's bucket does not exist.
	ErrNoBucket = errors.New("s3 bucket does not exist")
	// ErrTLS: the server's certificate is not trusted or does not match.
	ErrTLS = errors.New("s3 TLS failure")
	// ErrChecksum: a downloaded object does not match the checksum stored
	// with it. Retryable: a second download tells a corrupt transfer from a
	// corrupt object.
	ErrChecksum = errors.New("s3 object checksum mismatch")
)

// authCodes are S3 error codes that retrying with the same credentials
// cannot fix.
var authCodes = map[string]string{
	"InvalidAccessKeyId":           "the access key is not known to the server",
	"XAdminUserNotFound":           "the access key is not known to the server", // versitygw's word for it
	"SignatureDoesNotMatch":        "the secret key is wrong",
	"AccessDenied":                 "access denied: check the access key, the secret key and the bucket policy",
	"InvalidToken":                 "the session token is invalid",
	"ExpiredToken":                 "the session token has expired",
	"TokenRefreshRequired":         "the session token has expired",
	"AuthorizationHeaderMalformed": "the signing region or credentials are malformed",
	"RequestTimeTooSkewed":         "this machine's clock is too far from the server's",
	"AccountProblem":               "the account is disabled",
}

// transientCodes are S3 error codes worth retrying.
var transientCodes = map[string]bool{ // the value is always true
	"InternalError":               true,
	"ServiceUnavailable":          true,
	"SlowDown":                    true,
	"SlowDownRead":                true,
	"SlowDownWrite":               true,
	"Throttling":                  true,
	"ThrottlingException":         true,
	"RequestLimitExceeded":        true,
	"RequestThrottled":            true,
	"RequestTimeout":              true,
	"RequestError":                true,
	"OperationAborted":            true,
	"BadDigest":                   true, // the body was damaged on the way
	"IncompleteBody":              true,
	"XAmzContentSHA256Mismatch":   true,
	"XAmzContentChecksumMismatch": true,
	"ConnectionResetByPeer":       true,
	"ClientDisconnected":          true,
}

// classify turns a minio-go or transport error of an operation into one
// that keeps the backend contract: ErrNotFound, ErrExists, ErrAuth,
// ErrNoBucket, ErrTLS, the context's own error, or an error marked
// backend.Retryable when a retry may help. what describes the operation
// ("stat data/ab12...").
func (b *Backend) classify(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The caller gave up: never retryable, whatever the transport said.
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code != "" || resp.StatusCode != 0) {
		return b.classifyResponse(what, resp)
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr x509.CertificateInvalidError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &certErr) {
		return fmt.Errorf("%s: %w: %v (give the server's CA certificate with the CA file option)", what, ErrTLS, err)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%s: %w: the server speaks plain HTTP; use s3:http://", what, ErrTLS)
	}
	if strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
		return fmt.Errorf("%s: %w: the server does not speak TLS; use s3:http://", what, ErrTLS)
	}
	// Everything else comes from the network: refused or reset
	// connections, timeouts, a body cut short. A retry may go through.
	return backend.Retryable(fmt.Errorf("%s: %w", what, err))
}

func (b *Backend) classifyResponse(what string, resp minio.ErrorResponse) error {
	detail := resp.Code
	if resp.Message != "" {
		detail += ": " + resp.Message
	}
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NotFound":
		return fmt.Errorf("%s: %w", what, backend.ErrNotFound)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%s: %w: %s at %s (an init of the repository creates it)", what, ErrNoBucket, b.loc.Bucket, b.loc.Endpoint)
	case resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("%s: %w", what, backend.ErrExists)
	}
	if hint, ok := authCodes[resp.Code]; ok {
		return fmt.Errorf("%s: %w at %s: %s (%s)", what, ErrAuth, b.loc.Endpoint, hint, resp.Code)
	}
	if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: %w at %s: %s", what, ErrAuth, b.loc.Endpoint, detail)
	}
	if transientCodes[resp.Code] {
		return backend.Retryable(fmt.Errorf("%s: %s", what, detail))
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, 499:
		return backend.Retryable(fmt.Errorf("%s: %s (HTTP %d)", what, detail, resp.StatusCode))
	case http.StatusNotImplemented:
		return fmt.Errorf("%s: the server does not implement this: %s", what, detail)
	}
	if resp.StatusCode >= 500 {
		return backend.Retryable(fmt.Errorf("%s: %s (HTTP %d)", what, detail, resp.StatusCode))
	}
	return fmt.Errorf("%s: %s (HTTP %d)", what, detail, resp.StatusCode)
}
