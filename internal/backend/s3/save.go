package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// metaSHA256 is the user metadata (x-amz-meta-bulwark-sha256) holding the
// SHA-256 of a whole object, checked when the whole object is loaded.
const metaSHA256 = "Bulwark-Sha256"

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// smallObject: below this size a Save allocates its buffer instead of
// taking a part-sized one from the pool.
const smallObject = 1 << 20

// Save uploads rd (exactly size bytes) under h. The object appears whole
// or not at all: S3 makes a single PUT visible only once complete, and a
// multipart upload only when it is completed; a failed multipart upload
// is aborted. Every request carries Content-MD5 and the signed SHA-256 of
// its body, which the server checks, and the object records the SHA-256 of
// its whole content (when it is known up front) for Load to check.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	what := "save " + h.String()
	if err := begin(ctx, what, h); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%s: negative size %d", what, size)
	}
	key := b.key(h)
	// Refuse an existing name before reading or sending anything. The
	// conditional write below closes the race with a concurrent Save where
	// the server supports it.
	_, err := b.core.StatObject(ctx, b.loc.Bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return fmt.Errorf("%s: %w", what, backend.ErrExists)
	}
	if err := b.classify(ctx, what, err); !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	if size <= b.cfg.PartSize {
		return b.putSingle(ctx, what, key, rd, size)
	}
	return b.putMultipart(ctx, what, key, rd, size)
}

// bufPool holds part-sized buffers.
var bufPool sync.Pool

func (b *Backend) getBuf(size int64) ([]byte, func()) {
	if size < smallObject {
		return make([]byte, size), func() {}
	}
	if p, ok := bufPool.Get().(*[]byte); ok && int64(cap(*p)) >= size {
		return (*p)[:size], func() { bufPool.Put(p) }
	}
	buf := make([]byte, size, max(size, b.cfg.PartSize))
	return buf, func() { bufPool.Put(&buf) }
}

// readExactly fills buf from rd, and makes sure rd has nothing more.
func readExactly(rd io.Reader, buf []byte, total int64, final bool) error {
	if n, err := io.ReadFull(rd, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("read data: the reader ended early (%d bytes short of %d)", int64(len(buf)-n), total)
		}
		return fmt.Errorf("read data: %w", err)
	}
	if final {
		return expectEOF(rd, total)
	}
	return nil
}

func expectEOF(rd io.Reader, total int64) error {
	var one [1]byte
	n, err := io.ReadFull(rd, one[:])
	if n > 0 {
		return fmt.Errorf("read data: the reader has more than the %d bytes announced", total)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read data: %w", err)
	}
	return nil
}

func sums(data []byte) (md5b64, sha256hex string) {
	m := md5.Sum(data)
	s := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(m[:]), hex.EncodeToString(s[:])
}

// conditionally runs put with If-None-Match: * when the server supports
// it; a server that does not is remembered and asked without.
func (b *Backend) conditionally(what string, put func(opts *minio.PutObjectOptions) error) error {
	for {
		var opts minio.PutObjectOptions
		cond := b.conditional.Load()
		if cond {
			opts.SetMatchETagExcept("*")
		}
		err := put(&opts)
		var resp minio.ErrorResponse
		if cond && errors.As(err, &resp) && resp.Code == "NotImplemented" {
			if b.conditional.CompareAndSwap(true, false) {
				b.log.Info("server refuses conditional writes; relying on a stat before each save", "endpoint", b.loc.Endpoint)
			}
			continue
		}
		return err
	}
}

func (b *Backend) putSingle(ctx context.Context, what, key string, rd io.Reader, size int64) error {
	buf, release := b.getBuf(size)
	defer release()
	if err := readExactly(rd, buf, size, true); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	md5b64, shaHex := sums(buf)
	err := b.conditionally(what, func(opts *minio.PutObjectOptions) error {
		opts.UserMetadata = map[string]string{metaSHA256: shaHex}
		opts.DisableContentSha256 = true // sign the SHA-256 we computed, not a stream
		body := newGuardedReader(buf)
		defer body.retire()
		_, err := b.core.PutObject(ctx, b.loc.Bucket, key, body, size, md5b64, shaHex, *opts)
		return err
	})
	return b.classify(ctx, what, err)
}

func (b *Backend) putMultipart(ctx context.Context, what, key string, rd io.Reader, size int64) (err error) {
	ps := b.cfg.PartSize
	nParts := (size + ps - 1) / ps
	if nParts > maxParts {
		return fmt.Errorf("%s: %d bytes need %d parts of %d bytes, over S3's %d; raise the part size", what, size, nParts, ps, maxParts)
	}
	meta := map[string]string{}
	if whole, ok, err := preHash(rd, size); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if ok {
		meta[metaSHA256] = whole
	}
	uploadID, err := b.core.NewMultipartUpload(ctx, b.loc.Bucket, key, minio.PutObjectOptions{UserMetadata: meta})
	if err != nil {
		return b.classify(ctx, what+": start upload", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx ended, so no parts linger.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := b.core.AbortMultipartUpload(actx, b.loc.Bucket, key, uploadID); aerr != nil {
			b.log.Warn("abort multipart upload failed; its parts stay until aborted", "key", key, "err", aerr)
		}
	}()

	conc := b.cfg.UploadConcurrency
	free := make(chan []byte, conc)
	for range conc {
		buf, release := b.getBuf(ps)
		defer release()
		free <- buf
	}
	parts := make([]minio.CompletePart, nParts)
	g, gctx := errgroup.WithContext(ctx)
	var readErr error
	for i := range nParts {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
		}
		if buf == nil {
			break // an upload failed; g.Wait reports it
		}
		n := min(ps, size-i*ps)
		if readErr = readExactly(rd, buf[:n], size, i == nParts-1); readErr != nil {
			free <- buf
			break
		}
		g.Go(func() error {
			defer func() { free <- buf }()
			part := buf[:n]
			md5b64, shaHex := sums(part)
			body := newGuardedReader(part)
			defer body.retire()
			// ctx, not gctx: a part in flight when a sibling fails is let
			// finish, so that the server is done with every part before the
			// abort; cutting it off could let the server store it after the
			// abort and leave an orphan.
			p, err := b.core.PutObjectPart(ctx, b.loc.Bucket, key, uploadID, int(i+1), body, n,
				minio.PutObjectPartOptions{Md5Base64: md5b64, Sha256Hex: shaHex, DisableContentSha256: true})
			if err != nil {
				return b.classify(ctx, fmt.Sprintf("%s: part %d of %d", what, i+1, nParts), err)
			}
			parts[i] = minio.CompletePart{PartNumber: int(i + 1), ETag: p.ETag}
			return nil
		})
	}
	werr := g.Wait()
	if readErr != nil {
		return fmt.Errorf("%s: %w", what, readErr)
	}
	if werr != nil {
		return werr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = b.conditionally(what, func(opts *minio.PutObjectOptions) error {
		_, err := b.core.CompleteMultipartUpload(ctx, b.loc.Bucket, key, uploadID, parts, *opts)
		return err
	})
	return b.classify(ctx, what+": complete upload", err)
}

// preHash computes the SHA-256 of the next size bytes of a reader that can
// seek back, and puts it back where it was. Other readers are read once,
// so their whole-object hash is not known before the upload starts.
func preHash(rd io.Reader, size int64) (string, bool, error) {
	rs, ok := rd.(io.ReadSeeker)
	if !ok {
		return "", false, nil
	}
	pos, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", false, nil // a pipe behind an *os.File: read it once
	}
	h := sha256.New()
	n, err := io.CopyN(h, rs, size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read data: the reader ended early (%d bytes short of %d)", size-n, size)
		}
		return "", false, fmt.Errorf("read data: %w", err)
	}
	if _, err := rs.Seek(pos, io.SeekStart); err != nil {
		return "", false, fmt.Errorf("read data: seek back: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), true, nil
}

// guardedReader is a request body over a pooled buffer. The HTTP transport
// may still be reading a body after the response came back (an early
// error answer); retire, called before the buffer goes back to the pool,
// waits for a Read in progress and makes later ones fail, so no request
// ever sends bytes of the buffer's next use.
type guardedReader struct {
	mu      sync.Mutex
	r       *bytes.Reader
	retired bool
}

var errRetired = errors.New("request body used after its request ended")

func newGuardedReader(b []byte) *guardedReader { return &guardedReader{r: bytes.NewReader(b)} }

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return 0, errRetired
	}
	return g.r.Read(p)
}

// Seek lets the client rewind the body, as it does before sending.
func (g *guardedReader) Seek(off int64, whence int) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return 0, errRetired
	}
	return g.r.Seek(off, whence)
}

func (g *guardedReader) retire() {
	g.mu.Lock()
	g.retired = true
	g.mu.Unlock()
}
