package retry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
)

// fakeClock makes pauses instant and records them.
type fakeClock struct {
	t      time.Time
	pauses []time.Duration
}

func withFakeClock(b *Backend, jitter float64) *fakeClock {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b.now = func() time.Time { return c.t }
	b.sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.pauses = append(c.pauses, d)
		c.t = c.t.Add(d)
		return nil
	}
	b.jitter = func() float64 { return jitter }
	return c
}

var h = backend.Handle{Type: backend.PackFile, Name: "0123abcd"}

func TestSaveRetriesSeekableAndBuffered(t *testing.T) {
	data := bytes.Repeat([]byte("pack"), 1000)
	for name, mk := range map[string]func() io.Reader{
		"seeker":   func() io.Reader { return bytes.NewReader(data) },
		"buffered": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"offsetted": func() io.Reader {
			r := bytes.NewReader(append([]byte("skip"), data...))
			_, _ = r.Seek(4, io.SeekStart)
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFlaky()
			f.before = failFirst("save", 2, errTransient)
			b := New(f, Options{})
			withFakeClock(b, 0.5)
			if err := b.Save(context.Background(), h, mk(), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if got := f.Calls("save"); got != 3 {
				t.Fatalf("%d save calls, want 3", got)
			}
			if !bytes.Equal(f.files[h], data) {
				t.Fatal("stored data differs")
			}
		})
	}
}

func TestSaveTooLargeToReplayGetsOneAttempt(t *testing.T) {
	f := newFlaky()
	f.before = failFirst("save", 1, errTransient)
	b := New(f, Options{MaxBuffer: 10})
	withFakeClock(b, 0.5)
	err := b.Save(context.Background(), h, iotest.OneByteReader(strings.NewReader("more than ten bytes")), 19)
	if !errors.Is(err, errTransient) {
		t.Fatalf("err %v, want the transient error", err)
	}
	if got := f.Calls("save"); got != 1 {
		t.Fatalf("%d save calls, want 1", got)
	}
}

func TestPermanentErrorAtOnce(t *testing.T) {
	f := newFlaky()
	f.before = failFirst("stat", 100, errPermanent)
	b := New(f, Options{})
	c := withFakeClock(b, 0.5)
	_, err := b.Stat(context.Background(), h)
	if !errors.Is(err, errPermanent) {
		t.Fatalf("err %v", err)
	}
	if f.Calls("stat") != 1 || len(c.pauses) != 0 {
		t.Fatalf("%d calls, %d pauses; want 1 call, no pause", f.Calls("stat"), len(c.pauses))
	}
	// Not found is permanent too.
	f.before = nil
	if _, err := b.Stat(context.Background(), h); !errors.Is(err, backend.ErrNotFound) || f.Calls("stat") != 2 {
		t.Fatalf("err %v after %d calls", err, f.Calls("stat"))
	}
}

func TestBoundAndBackoffSchedule(t *testing.T) {
	f := newFlaky()
	f.before = failFirst("stat", 1000, errTransient)
	b := New(f, Options{MaxElapsed: 10 * time.Second, InitialInterval: time.Second, MaxInterval: 4 * time.Second})
	c := withFakeClock(b, 1) // jitter at its top: pauses equal their ceiling
	_, err := b.Stat(context.Background(), h)
	if !errors.Is(err, errTransient) || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("err %v", err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	if len(c.pauses) != len(want) {
		t.Fatalf("pauses %v, want %v", c.pauses, want)
	}
	for i := range want {
		if c.pauses[i] != want[i] {
			t.Fatalf("pauses %v, want %v", c.pauses, want)
		}
	}
	if f.Calls("stat") != 4 {
		t.Fatalf("%d calls, want 4", f.Calls("stat"))
	}
}

func TestFullJitterScalesPause(t *testing.T) {
	b := New(newFlaky(), Options{InitialInterval: time.Second, MaxInterval: 8 * time.Second})
	withFakeClock(b, 0.25)
	for attempt, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 4: 2 * time.Second, 10: 2 * time.Second} {
		if got := b.pause(attempt); got != want {
			t.Errorf("pause(%d) = %v, want %v", attempt, got, want)
		}
	}
	withFakeClock(b, 0)
	if got := b.pause(3); got != 0 {
		t.Errorf("zero jitter gives %v", got)
	}
}

func TestContextEndsRetrying(t *testing.T) {
	f := newFlaky()
	ctx, cancel := context.WithCancel(context.Background())
	f.before = func(op string, n int) error {
		if n == 2 {
			cancel()
		}
		return errTransient
	}
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	_, err := b.Stat(ctx, h)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if backend.IsRetryable(err) {
		t.Fatal("a cancelled operation is reported retryable")
	}
	if f.Calls("stat") != 2 {
		t.Fatalf("%d calls, want 2", f.Calls("stat"))
	}
}

func TestLoadRestartsFn(t *testing.T) {
	f := newFlaky()
	f.files[h] = []byte("0123456789")
	f.loadCut = 3
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	var calls int
	var got []byte
	err := b.Load(context.Background(), h, 2, 5, func(rd io.Reader) error {
		calls++
		data, err := io.ReadAll(rd)
		got = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || string(got) != "23456" {
		t.Fatalf("fn called %d times, last got %q", calls, got)
	}
}

func TestLoadFnErrorIsFinal(t *testing.T) {
	f := newFlaky()
	f.files[h] = []byte("x")
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	bad := errors.New("cannot decode")
	err := b.Load(context.Background(), h, 0, 0, func(io.Reader) error { return bad })
	if !errors.Is(err, bad) || f.Calls("load") != 1 {
		t.Fatalf("err %v after %d calls", err, f.Calls("load"))
	}
}

func TestListResumesWithoutDuplicates(t *testing.T) {
	f := newFlaky()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		f.files[backend.Handle{Type: backend.IndexFile, Name: n}] = []byte(n)
	}
	f.listFailAfter = 3
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	var names []string
	err := b.List(context.Background(), backend.IndexFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, "") != "abcde" || f.Calls("list") != 2 {
		t.Fatalf("names %v after %d listings", names, f.Calls("list"))
	}
}

func TestListCallbackErrorNotRetried(t *testing.T) {
	f := newFlaky()
	f.files[backend.Handle{Type: backend.IndexFile, Name: "a"}] = nil
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	// Even a callback error that wraps a retryable one ends the listing.
	err := b.List(context.Background(), backend.IndexFile, func(backend.FileInfo) error { return errTransient })
	if !errors.Is(err, errTransient) || f.Calls("list") != 1 {
		t.Fatalf("err %v after %d listings", err, f.Calls("list"))
	}
}

func TestLostAnswers(t *testing.T) {
	f := newFlaky()
	// The first save and remove do their work, then lose the answer.
	f.after = func(op string, n int) error {
		if n == 1 {
			return errTransient
		}
		return nil
	}
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	ctx := context.Background()
	if err := b.Save(ctx, h, strings.NewReader("abc"), 3); err != nil {
		t.Fatalf("save: %v", err)
	}
	if f.Calls("save") != 2 {
		t.Fatalf("%d saves, want 2", f.Calls("save"))
	}
	// A remove whose answer was lost is retried and then finds the file
	// gone: not found, as for any missing file, and the file is gone.
	if err := b.Remove(ctx, h); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("remove: %v", err)
	}
	if f.Calls("remove") != 2 || len(f.files) != 0 {
		t.Fatalf("%d removes, %d files left; want 2 and 0", f.Calls("remove"), len(f.files))
	}
	// Without a lost answer, exists stays an error.
	f.files[h] = []byte("abc")
	if err := b.Save(ctx, h, strings.NewReader("abc"), 3); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("save of an existing file: %v", err)
	}
}

func TestRetryWithRealSleep(t *testing.T) {
	// The real clock path, with pauses short enough not to matter.
	f := newFlaky()
	f.before = failFirst("stat", 2, errTransient)
	f.files[h] = []byte("z")
	b := New(f, Options{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond})
	fi, err := b.Stat(context.Background(), h)
	if err != nil || fi.Size != 1 || f.Calls("stat") != 3 {
		t.Fatalf("fi %+v err %v after %d calls", fi, err, f.Calls("stat"))
	}
	if b.Location() != "flaky:" || b.Unwrap() != backend.Backend(f) {
		t.Fatal("location or unwrap")
	}
}

func TestSaveBufferedRefusesLongReader(t *testing.T) {
	f := newFlaky()
	b := New(f, Options{})
	withFakeClock(b, 0.5)
	err := b.Save(context.Background(), h, iotest.OneByteReader(strings.NewReader("abcdef")), 3)
	if err == nil || !strings.Contains(err.Error(), "more than the 3 bytes") {
		t.Fatalf("save of 6 bytes announced as 3: %v", err)
	}
	if f.Calls("save") != 0 || len(f.files) != 0 {
		t.Fatal("the backend was called with a truncated reader")
	}
}
