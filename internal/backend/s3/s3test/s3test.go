package s3test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// EnvBinary names the versitygw binary to use, ahead of PATH and the cache.
const EnvBinary = "BULWARK_VERSITYGW"

// InstallHint tells how to get the binary.
const InstallHint = "GOBIN=$HOME/.cache/bulwark-test/bin go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Binary finds the versitygw executable.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s is not an executable file", EnvBinary, p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("versitygw not found (" + EnvBinary + ", PATH) and no home directory to install it in: " + InstallHint)
	}
	p := filepath.Join(home, ".cache", "bulwark-test", "bin", "versitygw")
	if isExecutable(p) {
		return p, nil
	}
	// A fresh machine: build it once into the cache, so that `go test
	// ./...` needs nothing but Go and the module proxy. Set
	// BULWARK_NO_INSTALL=1 to refuse instead.
	if os.Getenv("BULWARK_NO_INSTALL") != "" {
		return "", errors.New("versitygw not found (" + EnvBinary + ", PATH, $HOME/.cache/bulwark-test/bin); install it with: " + InstallHint)
	}
	installOnce.Do(func() { installErr = install(filepath.Dir(p)) })
	if installErr != nil {
		return "", installErr
	}
	return p, nil
}

var (
	installOnce sync.Once
	installErr  error
)

// install builds versitygw into dir with the go command that runs the
// tests (about two minutes on two cores, once per machine).
func install(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("versitygw not found and no go command to build it: %w; install it with: %s", err, InstallHint)
	}
	cmd := exec.Command(goBin, "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("versitygw not found; installing it failed (%v): %s\ninstall it by hand with: %s", err, out, InstallHint)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Options for Start.
type Options struct {
	CertFile, KeyFile string // serve HTTPS with this certificate
	Dir               string // directory to serve; a new temporary one when empty
}

// Server is a running (or killed) versitygw.
type Server struct {
	AccessKey, SecretKey string
	Dir                  string // the served directory: buckets are its subdirectories
	Addr                 string // 127.0.0.1:port
	Secure               bool

	t    testing.TB
	bin  string
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	logs *lockedBuffer
}

// Start starts versitygw on a free loopback port and waits until it answers.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s := &Server{
		AccessKey: "bulwarktest",
		SecretKey: randomHex(20),
		Dir:       o.Dir,
		Secure:    o.CertFile != "",
		t:         t,
		bin:       bin,
		opts:      o,
		logs:      &lockedBuffer{},
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.logs.tail(4000))
		}
	})
	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("start versitygw: %v\n%s", lastErr, s.logs.tail(4000))
	return nil
}

// URL is the server's base URL.
func (s *Server) URL() string {
	if s.Secure {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// Location is the s3: repository location of bucket and prefix on this server.
func (s *Server) Location(bucket, prefix string) string {
	loc := "s3:" + s.URL() + "/" + bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	return loc
}

func (s *Server) start() error {
	args := []string{"--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.Addr}
	if s.opts.CertFile != "" {
		args = append(args, "--cert", s.opts.CertFile, "--key", s.opts.KeyFile)
	}
	args = append(args, "posix", s.Dir)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return s.waitReady(done)
}

// waitReady polls until the server answers HTTP, or it exits, or 30 s pass.
func (s *Server) waitReady(done chan struct{}) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		// Only whether it answers matters here, not whom we trust.
		TLSClientConfig: insecureTLS(),
	}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return errors.New("versitygw exited before it answered")
		default:
		}
		resp, err := client.Get(s.URL() + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any answer (403 for an unsigned request) means it serves
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("versitygw did not answer within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to be gone. It is a no-op
// when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts the server again on the same directory and port, after
// Kill (or a crash).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart versitygw: %v\n%s", err, s.logs.tail(4000))
	}
}

// ChangeKeys restarts the server with other credentials, as when an
// administrator rotates them: clients holding the old ones are refused.
func (s *Server) ChangeKeys(access, secret string) {
	s.t.Helper()
	s.Kill()
	s.AccessKey, s.SecretKey = access, secret
	s.Restart()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects the server's output from two pipes at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
