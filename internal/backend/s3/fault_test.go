package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend"
	"github.com/bulwark-ml/bulwark/internal/backend/faultproxy"
	"github.com/bulwark-ml/bulwark/internal/backend/retry"
	"github.com/bulwark-ml/bulwark/internal/backend/s3"
	"github.com/bulwark-ml/bulwark/internal/backend/s3/s3test"
)

// proxied starts a fault proxy in front of srv and returns it with a
// config whose location points at the proxy.
func proxied(t *testing.T, srv *s3test.Server, bucket, prefix string) (*faultproxy.Proxy, s3.Config) {
	t.Helper()
	p, err := faultproxy.Start(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg := config(srv, bucket, prefix)
	cfg.Location = "s3:" + p.URL() + "/" + bucket + "/" + prefix
	return p, cfg
}

// quickRetry retries fast: tests count attempts, they do not wait.
func quickRetry(be backend.Backend) *retry.Backend {
	return retry.New(be, retry.Options{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsed: time.Minute})
}

func TestWrongCredentialsFailAtOnce(t *testing.T) {
	srv := s3test.Start(t)
	create(t, config(srv, "auth", "repo"))
	p, cfg := proxied(t, srv, "auth", "repo")
	ctx := context.Background()

	for name, mutate := range map[string]func(*s3.Config){
		"wrong secret": func(c *s3.Config) { c.SecretKey = "not-the-secret" },
		"unknown key":  func(c *s3.Config) { c.AccessKey = "nobody" },
		"both wrong":   func(c *s3.Config) { c.AccessKey, c.SecretKey = "nobody", "nothing" },
	} {
		bad := cfg
		mutate(&bad)
		p.ResetStats()
		_, err := s3.Open(ctx, bad)
		if !errors.Is(err, s3.ErrAuth) || backend.IsRetryable(err) {
			t.Fatalf("%s: open: %v, want a permanent ErrAuth", name, err)
		}
		if n := p.Stats().Requests; n != 1 {
			t.Fatalf("%s: open sent %d requests, want 1", name, n)
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), bad.SecretKey) {
			t.Fatalf("%s: the error shows the secret: %v", name, err)
		}
	}

	// Keys rotated while a backend is open: every operation through the
	// retry decorator fails at once with a reason, one request each.
	be, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	h := backend.Handle{Type: backend.IndexFile, Name: "i1"}
	if err := be.Save(ctx, h, strings.NewReader("index"), 5); err != nil {
		t.Fatal(err)
	}
	srv.ChangeKeys(srv.AccessKey, "rotated-secret")
	rb := quickRetry(be)
	p.ResetStats()
	_, err = loadAll(ctx, rb, h, 0, 0)
	if !errors.Is(err, s3.ErrAuth) || !strings.Contains(err.Error(), "secret key is wrong") {
		t.Fatalf("load with rotated keys: %v", err)
	}
	t.Logf("rotated keys: %v", err)
	err = rb.Save(ctx, backend.Handle{Type: backend.IndexFile, Name: "i2"}, strings.NewReader("x"), 1)
	if !errors.Is(err, s3.ErrAuth) {
		t.Fatalf("save with rotated keys: %v", err)
	}
	if n := p.Stats().Requests; n != 2 {
		t.Fatalf("%d requests for one load and one save, want 2 (no retry loop)", n)
	}
}

func TestInjectedFaultsAreRetried(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads and retries tens of MiB through the fault proxy")
	}
	srv := s3test.Start(t)
	create(t, config(srv, "faults", "repo"))
	p, cfg := proxied(t, srv, "faults", "repo")
	be, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rb := quickRetry(be)
	ctx := context.Background()

	p.SetRules(
		faultproxy.Rule{Method: "PUT", QueryKey: "partNumber", Fault: faultproxy.Status, Status: 500, Skip: 1, Times: 2},
		faultproxy.Rule{Method: "POST", QueryKey: "uploadId", Fault: faultproxy.Drop, Times: 1},
		faultproxy.Rule{Method: "PUT", Fault: faultproxy.Status, Status: 503, Every: 2, Times: 3},
		faultproxy.Rule{Method: "PUT", Fault: faultproxy.LoseAnswer, Times: 1},
		faultproxy.Rule{Method: "HEAD", Fault: faultproxy.Status, Status: 503, Every: 4},
		faultproxy.Rule{Method: "GET", Fault: faultproxy.Delay, Delay: 200 * time.Millisecond, Times: 2},
		faultproxy.Rule{Method: "GET", Fault: faultproxy.Truncate, Bytes: 1000, Times: 2},
		faultproxy.Rule{Method: "GET", Fault: faultproxy.Status, Status: 429, Times: 1},
	)

	objects := map[backend.Handle][]byte{
		{Type: backend.PackFile, Name: "aa01"}:  randomData(10, 2*s3.MinPartSize+999), // multipart
		{Type: backend.PackFile, Name: "aa02"}:  randomData(11, 300000),
		{Type: backend.IndexFile, Name: "i1"}:   randomData(12, 5000),
		{Type: backend.SnapshotFile, Name: "s"}: randomData(13, 700),
	}
	for h, data := range objects {
		if err := rb.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("save %v: %v", h, err)
		}
	}
	for h, data := range objects {
		got, err := loadAll(ctx, rb, h, 0, 0)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("load %v: %d bytes, %v", h, len(got), err)
		}
		got, err = loadAll(ctx, rb, h, 100, 400)
		if err != nil || !bytes.Equal(got, data[100:500]) {
			t.Fatalf("range of %v: %d bytes, %v", h, len(got), err)
		}
	}
	var packs []string
	if err := rb.List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		packs = append(packs, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(packs) != 2 {
		t.Fatalf("list shows %v, want exactly the two packs", packs)
	}
	st := p.Stats()
	if st.Injected < 10 {
		t.Fatalf("only %d faults injected (%+v); the test lost its teeth", st.Injected, st)
	}
	t.Logf("proxy: %+v", st)
}

func TestServerKilledMidUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server around a multipart upload")
	}
	srv := s3test.Start(t)
	be := create(t, config(srv, "crash", "repo"))
	ctx := context.Background()
	h := backend.Handle{Type: backend.PackFile, Name: "cc01"}
	data := randomData(20, 5*s3.MinPartSize)

	// The reader kills the server once two parts' worth has been read:
	// earlier parts are uploaded, later ones never will be.
	rd := &killingReader{r: bytes.NewReader(data), after: 2 * s3.MinPartSize, kill: srv.Kill}
	err := be.Save(ctx, h, rd, int64(len(data)))
	if err == nil {
		t.Fatal("save succeeded while the server was killed")
	}
	if !backend.IsRetryable(err) {
		t.Fatalf("save to a dead server: %v, want a retryable error", err)
	}

	srv.Restart()
	if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("stat after the failed upload: %v, want not found (no partial object)", err)
	}
	if _, err := loadAll(ctx, be, h, 0, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("load after the failed upload: %v", err)
	}
	if err := be.List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		return errors.New("listed " + fi.Name + " after the failed upload")
	}); err != nil {
		t.Fatal(err)
	}
	// The abort at failure could not reach the dead server: the parts
	// linger as an incomplete upload until cleaned up.
	n, err := be.AbortIncompleteUploads(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("aborted %d incomplete uploads (%v), want 1", n, err)
	}

	if err := be.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save after restart: %v", err)
	}
	got, err := loadAll(ctx, be, h, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load after restart: %d bytes, %v", len(got), err)
	}
}

// TestRetryRidesOutRestart: the server dies before a save; the retry
// decorator keeps trying, the server comes back after the first failure,
// and the save completes.
func TestRetryRidesOutRestart(t *testing.T) {
	srv := s3test.Start(t)
	be := create(t, config(srv, "restart", "repo"))
	failed := make(chan struct{})
	var once sync.Once
	log := slog.New(&signalHandler{on: func() { once.Do(func() { close(failed) }) }})
	rb := retry.New(be, retry.Options{InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond, MaxElapsed: time.Minute, Logger: log})

	srv.Kill()
	h := backend.Handle{Type: backend.PackFile, Name: "dd01"}
	data := randomData(30, 2*s3.MinPartSize+1)
	done := make(chan error, 1)
	go func() { done <- rb.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))) }()
	<-failed
	srv.Restart()
	if err := <-done; err != nil {
		t.Fatalf("save across a restart: %v", err)
	}
	got, err := loadAll(context.Background(), rb, h, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load: %d bytes, %v", len(got), err)
	}
}

type killingReader struct {
	r     io.Reader
	after int
	read  int
	kill  func()
	done  bool
}

func (k *killingReader) Read(p []byte) (int, error) {
	if !k.done && k.read >= k.after {
		k.done = true
		k.kill()
	}
	n, err := k.r.Read(p)
	k.read += n
	return n, err
}

// signalHandler calls on for every record at Warn or above (the retry
// decorator's "retrying" message).
type signalHandler struct{ on func() }

func (s *signalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (s *signalHandler) Handle(context.Context, slog.Record) error    { s.on(); return nil }
func (s *signalHandler) WithAttrs([]slog.Attr) slog.Handler           { return s }
func (s *signalHandler) WithGroup(string) slog.Handler                { return s }

// TestStalledServerTimesOut: a server that stops answering is cut off after
// the stall timeout with a retryable error, and the retry goes through.
func TestStalledServerTimesOut(t *testing.T) {
	srv := s3test.Start(t)
	create(t, config(srv, "stall", "repo"))
	p, cfg := proxied(t, srv, "stall", "repo")
	cfg.StallTimeout = 300 * time.Millisecond
	be, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	h := backend.Handle{Type: backend.SnapshotFile, Name: "s1"}
	if err := be.Save(ctx, h, strings.NewReader("snapshot"), 8); err != nil {
		t.Fatal(err)
	}
	// Every GET stalls: the HTTP client itself may resend a GET once on a
	// fresh connection, and that one must stall too.
	p.SetRules(faultproxy.Rule{Method: "GET", Fault: faultproxy.Delay, Delay: 5 * time.Second})
	_, err = loadAll(ctx, be, h, 0, 0)
	if err == nil || !backend.IsRetryable(err) {
		t.Fatalf("load from a stalled server: %v, want a retryable timeout (proxy %+v)", err, p.Stats())
	}
	t.Logf("stalled: %v", err)
	p.SetRules(faultproxy.Rule{Method: "GET", Fault: faultproxy.Delay, Delay: 5 * time.Second, Times: 1})
	got, err := loadAll(ctx, quickRetry(be), h, 0, 0)
	if err != nil || string(got) != "snapshot" {
		t.Fatalf("load after the stall: %q, %v", got, err)
	}
}

// TestCorruptedUploadIsRefused: a body damaged on the way to the server is
// refused by it (Content-MD5 and the signed SHA-256 no longer match), so
// nothing damaged is stored; the error is retryable and a retry stores the
// object intact.
func TestCorruptedUploadIsRefused(t *testing.T) {
	srv := s3test.Start(t)
	create(t, config(srv, "corrupt", "repo"))
	p, cfg := proxied(t, srv, "corrupt", "repo")
	be, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
	}{{"ab00", 200000}, {"ab01", s3.MinPartSize + 10}} {
		h := backend.Handle{Type: backend.PackFile, Name: tc.name}
		data := randomData(50, tc.size)
		p.SetRules(faultproxy.Rule{Method: "PUT", Fault: faultproxy.CorruptRequest, Bytes: 5, Times: 1})
		err := be.Save(ctx, h, bytes.NewReader(data), int64(len(data)))
		if err == nil || !backend.IsRetryable(err) {
			t.Fatalf("%s: save of a corrupted body: %v, want a retryable refusal", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
		if _, err := be.Stat(ctx, h); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("%s: stat after the refused upload: %v", tc.name, err)
		}
		p.SetRules(faultproxy.Rule{Method: "PUT", Fault: faultproxy.CorruptRequest, Bytes: 5, Times: 1})
		if err := quickRetry(be).Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("%s: save with retry: %v", tc.name, err)
		}
		got, err := loadAll(ctx, be, h, 0, 0)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: load: %d bytes, %v", tc.name, len(got), err)
		}
	}
	// The refused multipart upload was aborted, not left behind.
	if n, err := be.AbortIncompleteUploads(ctx, 0); err != nil || n != 0 {
		t.Fatalf("%d incomplete uploads left (%v), want 0", n, err)
	}
}
