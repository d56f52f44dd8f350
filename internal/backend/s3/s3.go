package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Backend stores a repository's files in an S3 bucket under a prefix.
type Backend struct {
	loc       Location
	core      *minio.Core
	transport *http.Transport
	log       *slog.Logger
	cfg       Config // secrets cleared after Open
	credFrom  string

	// conditional is cleared when the server answers a conditional PUT
	// (If-None-Match: *) with "not implemented"; Save then relies on its
	// Stat alone.
	conditional atomic.Bool
}

var _ backend.Backend = (*Backend)(nil)

// Open connects to an existing bucket. A missing bucket gives an error
// wrapping ErrNoBucket; refused credentials one wrapping ErrAuth. It sends
// one request.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	what := "open " + b.loc.String()
	exists, _, err := b.probe(ctx, what)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("%s: %w: %s at %s (an init of the repository creates it)", what, ErrNoBucket, b.loc.Bucket, b.loc.Endpoint)
	}
	return b, nil
}

// Create is Open for a new repository: it creates the bucket if it does not
// exist, and refuses a prefix that holds objects but no repository config,
// so a mistyped location never mixes a repository into someone's data.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	what := "create " + b.loc.String()
	exists, firstKey, err := b.probe(ctx, what)
	if err != nil {
		return nil, err
	}
	if !exists {
		err := b.core.MakeBucket(ctx, b.loc.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region})
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "BucketAlreadyOwnedByYou" || resp.Code == "BucketAlreadyExists") {
			err = nil // created meanwhile, by us or a concurrent init
		}
		if err != nil {
			return nil, b.classify(ctx, what+": make bucket", err)
		}
		b.log.Info("created bucket", "bucket", b.loc.Bucket, "endpoint", b.loc.Endpoint)
		return b, nil
	}
	if firstKey == "" {
		return b, nil
	}
	if _, err := b.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); err == nil {
		return b, nil // a repository: the repository layer refuses a second init
	} else if !errors.Is(err, backend.ErrNotFound) {
		return nil, err
	}
	return nil, fmt.Errorf("%s: the location holds objects (e.g. %q) but no repository", what, firstKey)
}

// probe lists at most one key under the prefix. It tells whether the
// bucket exists and whether the prefix is empty, and, unlike a HEAD
// request whose answer has no body (some servers even answer a HEAD with
// unknown credentials "404"), it gets the server's error code, so that
// refused credentials are reported as such.
func (b *Backend) probe(ctx context.Context, what string) (exists bool, firstKey string, err error) {
	opts := minio.ListObjectsOptions{Prefix: b.keyPrefix(), Recursive: true, MaxKeys: 1}
	for obj := range b.core.ListObjectsIter(ctx, b.loc.Bucket, opts) {
		if obj.Err != nil {
			var resp minio.ErrorResponse
			if errors.As(obj.Err, &resp) && resp.Code == "NoSuchBucket" {
				return false, "", nil
			}
			return false, "", b.classify(ctx, what, obj.Err)
		}
		return true, obj.Key, nil
	}
	if err := ctx.Err(); err != nil {
		return false, "", fmt.Errorf("%s: %w", what, err)
	}
	return true, "", nil
}

// connect parses the location, resolves the credentials and builds the
// client, without talking to the server.
func connect(cfg Config) (*Backend, error) {
	loc, err := ParseLocation(cfg.Location)
	if err != nil {
		return nil, err
	}
	if err := cfg.fillDefaults(); err != nil {
		return nil, fmt.Errorf("s3 %s: %w", loc, err)
	}
	creds, from, err := resolveCredentials(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", loc, err)
	}
	tr, err := newTransport(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", loc, err)
	}
	core, err := minio.NewCore(loc.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       loc.Secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		// Retrying is the retry decorator's job, with one policy and one
		// time bound; a second loop in here would multiply attempts.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", loc, err)
	}
	cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = "", "", ""
	b := &Backend{loc: loc, core: core, transport: tr, log: cfg.Logger, cfg: cfg, credFrom: from}
	b.conditional.Store(true)
	b.log.Debug("s3 backend", "location", loc.String(), "credentials_from", from)
	return b, nil
}

// Location is the canonical s3: location (it never holds credentials).
func (b *Backend) Location() string { return b.loc.String() }

// CredentialsSource tells where the credentials came from: "config",
// "environment", or a credentials file and profile.
func (b *Backend) CredentialsSource() string { return b.credFrom }

// Close drops idle connections.
func (b *Backend) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// keyPrefix is the repository's prefix in the bucket, with a trailing
// slash, or "" at the bucket's root.
func (b *Backend) keyPrefix() string {
	if b.loc.Prefix == "" {
		return ""
	}
	return b.loc.Prefix + "/"
}

// key maps a handle to an object key, in the local backend's layout:
// config, keys/<name>, data/<first two characters>/<name>, ...
func (b *Backend) key(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return b.keyPrefix() + string(backend.ConfigFile)
	case backend.PackFile:
		return b.keyPrefix() + string(h.Type) + "/" + h.Name[:2] + "/" + h.Name
	}
	return b.keyPrefix() + string(h.Type) + "/" + h.Name
}

// begin checks what every operation checks first.
func begin(ctx context.Context, what string, h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Stat reports the size of a stored file.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	what := "stat " + h.String()
	if err := begin(ctx, what, h); err != nil {
		return backend.FileInfo{}, err
	}
	info, err := b.core.StatObject(ctx, b.loc.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.FileInfo{}, b.classify(ctx, what, err)
	}
	return backend.FileInfo{Name: h.Name, Size: info.Size}, nil
}

// Remove deletes a file. S3 answers a delete of a missing key with
// success, so a Stat comes first to report ErrNotFound as the contract
// wants.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	what := "remove " + h.String()
	if _, err := b.Stat(ctx, h); err != nil {
		return err
	}
	if err := b.core.RemoveObject(ctx, b.loc.Bucket, b.key(h), minio.RemoveObjectOptions{}); err != nil {
		return b.classify(ctx, what, err)
	}
	return nil
}

// List calls fn for every file of type t, page by page.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	what := "list " + string(t)
	if err := t.Valid(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if t == backend.ConfigFile {
		fi, err := b.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	}
	dir := b.keyPrefix() + string(t) + "/"
	opts := minio.ListObjectsOptions{Prefix: dir, Recursive: true, MaxKeys: b.cfg.ListPageSize}
	for obj := range b.core.ListObjectsIter(ctx, b.loc.Bucket, opts) {
		if obj.Err != nil {
			return b.classify(ctx, what, obj.Err)
		}
		name, ok := b.nameOf(t, strings.TrimPrefix(obj.Key, dir))
		if !ok {
			continue
		}
		if err := fn(backend.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// nameOf returns the file name of a key below its type's directory, and
// false for keys that are not files of the layout (foreign objects,
// directory markers, misplaced packs).
func (b *Backend) nameOf(t backend.FileType, rel string) (string, bool) {
	name := rel
	if t == backend.PackFile {
		sub, n, ok := strings.Cut(rel, "/")
		if !ok || len(n) < 2 || n[:2] != sub {
			return "", false
		}
		name = n
	}
	if (backend.Handle{Type: t, Name: name}).Valid() != nil {
		return "", false
	}
	return name, true
}

// AbortIncompleteUploads aborts multipart uploads under the repository's
// prefix that were started more than olderThan ago: the leftovers of
// uploads whose process died. They are invisible to List and Load but
// take space until aborted (or until a bucket lifecycle rule expires
// them). Give olderThan well above the longest upload, so that uploads in
// progress elsewhere are left alone. It returns how many it aborted.
func (b *Backend) AbortIncompleteUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	what := "abort incomplete uploads in " + b.loc.String()
	cutoff := time.Now().Add(-olderThan)
	var stale []minio.ObjectMultipartInfo
	listCtx, stop := context.WithCancel(ctx) // ends the lister's goroutine on an early return
	defer stop()
	for up := range b.core.ListIncompleteUploads(listCtx, b.loc.Bucket, b.keyPrefix(), true) {
		if up.Err != nil {
			return 0, b.classify(ctx, what, up.Err)
		}
		if up.Initiated.Before(cutoff) {
			stale = append(stale, up)
		}
	}
	n := 0
	for _, up := range stale {
		if err := b.core.AbortMultipartUpload(ctx, b.loc.Bucket, up.Key, up.UploadID); err != nil {
			return n, b.classify(ctx, what, err)
		}
		b.log.Info("aborted incomplete upload", "key", up.Key, "started", up.Initiated)
		n++
	}
	return n, nil
}
