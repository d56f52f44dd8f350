package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Load calls fn with a reader of length bytes from offset (length 0: to
// the end). A range past the end gives backend.ErrShortFile before fn is
// called. The reader fails with a retryable error if the connection breaks
// or the body ends short, and, when the whole object is read and it
// recorded its SHA-256, with ErrChecksum (retryable) instead of io.EOF if
// the content does not match, so fn never takes a damaged object for a
// good one. Ranged reads are checked for length only; the repository
// authenticates every blob it reads anyway.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	what := "load " + h.String()
	if err := begin(ctx, what, h); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("%s: negative offset %d or length %d", what, offset, length)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		_ = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		_ = opts.SetRange(offset, 0) // offset to the end
	}
	body, info, header, err := b.core.GetObject(ctx, b.loc.Bucket, b.key(h), opts)
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.StatusCode == http.StatusRequestedRangeNotSatisfiable || resp.Code == "InvalidRange") {
			return b.loadOutOfRange(ctx, what, h, offset, length, fn)
		}
		return b.classify(ctx, what, err)
	}
	defer body.Close()

	want := info.Size // the length of this response's body
	if cr := header.Get("Content-Range"); cr != "" {
		total, ok := rangeTotal(cr)
		if !ok {
			return fmt.Errorf("%s: unreadable Content-Range %q", what, cr)
		}
		if length > 0 && offset+length > total {
			return fmt.Errorf("%s: %d bytes from %d of %d: %w", what, length, offset, total, backend.ErrShortFile)
		}
	}
	if want < 0 {
		// No Content-Length (a chunked answer): the range says how much.
		switch {
		case length > 0:
			want = length
		default:
			fi, err := b.Stat(ctx, h)
			if err != nil {
				return err
			}
			want = fi.Size - offset
		}
	}
	if length > 0 && want != length {
		return backend.Retryable(fmt.Errorf("%s: server sent %d bytes for a range of %d", what, want, length))
	}
	rd := &checkedBody{ctx: ctx, b: b, what: what, body: body, left: want}
	if offset == 0 && length == 0 {
		if sum := header.Get("X-Amz-Meta-" + metaSHA256); sum != "" {
			rd.sum, rd.hash = sum, sha256.New()
		}
	}
	return fn(rd)
}

// loadOutOfRange handles a range the server refused (416): an empty read
// at the very end of a file is fine; anything else is short or missing.
func (b *Backend) loadOutOfRange(ctx context.Context, what string, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	fi, err := b.Stat(ctx, h)
	if err != nil {
		return err
	}
	if length == 0 && offset == fi.Size {
		return fn(bytes.NewReader(nil))
	}
	return fmt.Errorf("%s: %d bytes from %d of %d: %w", what, length, offset, fi.Size, backend.ErrShortFile)
}

// rangeTotal reads the complete length from "bytes 0-99/1234".
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// checkedBody passes a response body to fn, turning transport failures
// into retryable errors, a short body into one, and a whole-object
// checksum mismatch into ErrChecksum.
type checkedBody struct {
	ctx  context.Context
	b    *Backend
	what string
	body io.Reader
	left int64

	sum  string // expected SHA-256 (hex), "" when not checked
	hash hash.Hash
	err  error // sticky
}

func (c *checkedBody) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left <= 0 {
		c.err = c.finish()
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.body.Read(p)
	c.left -= int64(n)
	if c.hash != nil {
		c.hash.Write(p[:n])
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if c.left > 0 {
			c.err = backend.Retryable(fmt.Errorf("%s: body ended %d bytes early: %w", c.what, c.left, io.ErrUnexpectedEOF))
			return n, c.err
		}
	default:
		c.err = c.b.classify(c.ctx, c.what, err)
		return n, c.err
	}
	if c.left == 0 && n == 0 {
		c.err = c.finish()
		return 0, c.err
	}
	return n, nil
}

// finish runs once the expected bytes are in: io.EOF, or ErrChecksum.
func (c *checkedBody) finish() error {
	if c.hash != nil {
		if got := hex.EncodeToString(c.hash.Sum(nil)); got != c.sum {
			return backend.Retryable(fmt.Errorf("%s: %w: content has SHA-256 %s, stored with %s", c.what, ErrChecksum, got, c.sum))
		}
	}
	return io.EOF
}
