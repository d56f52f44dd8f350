package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// Defaults for zero Options fields.
const (
	// DefaultMaxElapsed rides out a server restart or a throttling episode,
	// yet lets a scheduled backup fail visibly well within its interval.
	DefaultMaxElapsed      = 5 * time.Minute
	DefaultInitialInterval = 500 * time.Millisecond
	DefaultMaxInterval     = 30 * time.Second
	// DefaultMaxBuffer covers a repository pack (~16 MiB) with room to spare.
	DefaultMaxBuffer = 64 << 20
)

// Options tune the retry policy; zero fields take the defaults above.
type Options struct {
	MaxElapsed      time.Duration // no new attempt starts after this much time since the first
	InitialInterval time.Duration // upper bound of the first pause
	MaxInterval     time.Duration // upper bound of any pause
	MaxBuffer       int64         // largest non-seekable Save body buffered for replay
	Logger          *slog.Logger  // retries are logged at Warn; nil discards
}

// Backend retries a wrapped backend's transient failures.
type Backend struct {
	be   backend.Backend
	opts Options
	log  *slog.Logger

	// Clock and randomness, replaced by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func() float64 // uniform in [0, 1)
}

var _ backend.Backend = (*Backend)(nil)

// New wraps be.
func New(be backend.Backend, opts Options) *Backend {
	if opts.MaxElapsed <= 0 {
		opts.MaxElapsed = DefaultMaxElapsed
	}
	if opts.InitialInterval <= 0 {
		opts.InitialInterval = DefaultInitialInterval
	}
	if opts.MaxInterval <= 0 {
		opts.MaxInterval = DefaultMaxInterval
	}
	if opts.MaxInterval < opts.InitialInterval {
		opts.MaxInterval = opts.InitialInterval
	}
	if opts.MaxBuffer <= 0 {
		opts.MaxBuffer = DefaultMaxBuffer
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{be: be, opts: opts, log: log, now: time.Now, sleep: sleepCtx, jitter: rand.Float64}
}

// name is how a handle appears in errors: "data/0123...".
func name(h backend.Handle) string {
	if h.Name == "" {
		return string(h.Type)
	}
	return string(h.Type) + "/" + h.Name
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unwrap returns the decorated backend.
func (b *Backend) Unwrap() backend.Backend { return b.be }

// Location is the wrapped backend's.
func (b *Backend) Location() string { return b.be.Location() }

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.be.Close() }

// pause returns the full-jitter pause before retry number attempt (1-based):
// uniform in [0, min(MaxInterval, InitialInterval * 2^(attempt-1))).
func (b *Backend) pause(attempt int) time.Duration {
	ceil := b.opts.InitialInterval
	for i := 1; i < attempt && ceil < b.opts.MaxInterval; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.opts.MaxInterval)
	return time.Duration(b.jitter() * float64(ceil))
}

// do runs op until it succeeds, fails permanently, or the time bound is
// reached. op gets the attempt number (1-based).
func (b *Backend) do(ctx context.Context, what string, h backend.Handle, op func(attempt int) error) error {
	start := b.now()
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return fmt.Errorf("%s %s: %w (last error: %v)", what, name(h), ctxErr, err)
		}
		if !backend.IsRetryable(err) {
			return err
		}
		d := b.pause(attempt)
		if elapsed := b.now().Sub(start); elapsed+d > b.opts.MaxElapsed {
			return fmt.Errorf("%s %s: giving up after %d attempts in %v: %w", what, name(h), attempt, elapsed.Round(time.Millisecond), err)
		}
		b.log.Warn("backend operation failed, retrying", "op", what, "file", h.Type, "name", h.Name,
			"attempt", attempt, "pause", d.Round(time.Millisecond), "err", err)
		if serr := b.sleep(ctx, d); serr != nil {
			return fmt.Errorf("%s %s: %w (last error: %v)", what, name(h), serr, err)
		}
	}
}

// Save stores rd, replaying it on retries as the package doc describes.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd io.Reader, size int64) error {
	rewind, err := b.replayable(rd, size)
	if err != nil {
		return fmt.Errorf("save %s: %w", name(h), err)
	}
	if rewind.rd == nil {
		// Not replayable: one attempt, errors as they come.
		return b.be.Save(ctx, h, rd, size)
	}
	return b.do(ctx, "save", h, func(attempt int) error {
		if attempt > 1 {
			if err := rewind.reset(); err != nil {
				return fmt.Errorf("rewind: %w", err)
			}
		}
		err := b.be.Save(ctx, h, rewind.rd, size)
		if attempt > 1 && errors.Is(err, backend.ErrExists) {
			// An earlier attempt may have stored it and lost only the answer.
			fi, serr := b.Stat(ctx, h)
			if serr == nil && fi.Size == size {
				b.log.Info("save found the file stored by an earlier attempt", "file", h.Type, "name", h.Name)
				return nil
			}
		}
		return err
	})
}

// replay holds a reader that can be put back to its start.
type replay struct {
	rd    io.Reader
	reset func() error
}

func (b *Backend) replayable(rd io.Reader, size int64) (replay, error) {
	if s, ok := rd.(io.Seeker); ok {
		pos, err := s.Seek(0, io.SeekCurrent)
		if err == nil {
			return replay{rd: rd, reset: func() error {
				_, err := s.Seek(pos, io.SeekStart)
				return err
			}}, nil
		}
		// A "seeker" that cannot report its position (a pipe behind an
		// *os.File) falls through to buffering.
	}
	if size < 0 || size > b.opts.MaxBuffer {
		return replay{}, nil
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return replay{}, fmt.Errorf("read data: %w", err)
	}
	// The contract refuses a reader with more than size bytes; the backend
	// below only sees the buffer, so the check is made here.
	var one [1]byte
	if n, err := io.ReadFull(rd, one[:]); n > 0 {
		return replay{}, fmt.Errorf("read data: the reader has more than the %d bytes announced", size)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return replay{}, fmt.Errorf("read data: %w", err)
	}
	br := bytes.NewReader(buf)
	return replay{rd: br, reset: func() error {
		_, err := br.Seek(0, io.SeekStart)
		return err
	}}, nil
}

// Load calls fn, again on a retry with a fresh reader (see the package doc).
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64, fn func(io.Reader) error) error {
	return b.do(ctx, "load", h, func(int) error {
		return b.be.Load(ctx, h, offset, length, fn)
	})
}

// Stat is retried like any read.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	var fi backend.FileInfo
	err := b.do(ctx, "stat", h, func(int) error {
		var err error
		fi, err = b.be.Stat(ctx, h)
		return err
	})
	return fi, err
}

// List restarts a failed listing and skips names fn has already seen.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	seen := make(map[string]struct{})
	var fnErr error
	err := b.do(ctx, "list", backend.Handle{Type: t}, func(int) error {
		err := b.be.List(ctx, t, func(fi backend.FileInfo) error {
			if _, dup := seen[fi.Name]; dup {
				return nil
			}
			seen[fi.Name] = struct{}{}
			if err := fn(fi); err != nil {
				// fn's verdict is final: never retry the listing because
				// of it, even if it wraps a retryable error.
				fnErr = err
				return err
			}
			return nil
		})
		if fnErr != nil {
			return errStopListing
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// errStopListing ends the retry loop when fn failed; it is never retryable.
var errStopListing = errors.New("listing stopped by its callback")

// Remove is retried. A retry that finds the file gone reports
// backend.ErrNotFound as any Remove of a missing file does, even if it was
// an earlier attempt whose answer was lost that removed it: callers that
// only want the file gone ignore ErrNotFound.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	return b.do(ctx, "remove", h, func(int) error {
		return b.be.Remove(ctx, h)
	})
}
