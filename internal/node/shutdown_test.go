package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// serveReal runs a server on a real listener, as the CLI does, and waits
// until its background load has made it ready.
func serveReal(t *testing.T, cfg Config) (srv *Server, rt *fakeRuntime, ln net.Listener, cancel context.CancelFunc, done chan error) {
	t.Helper()
	st, err := modelstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	push(t, st, "slow", "1", "block")
	rt = newFakeRuntime()
	cfg.Store, cfg.Runtime = st, rt
	if srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	c := oip.NewClient("http://"+ln.Addr().String(), nil)
	for deadline := time.Now().Add(10 * time.Second); c.Ready(context.Background()) != nil; {
		if time.Now().After(deadline) {
			t.Fatal("node never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv, rt, ln, cancel, done
}

func slowRequest() *oip.InferRequest {
	x, _ := oip.NewInput("x", tensor.FromFloat32([]int{1, 4}, []float32{1, 2, 3, 4}))
	return &oip.InferRequest{ID: "slow", Inputs: []oip.RequestInput{x}}
}

func TestGracefulShutdown(t *testing.T) {
	_, rt, ln, cancel, done := serveReal(t, Config{ShutdownTimeout: 10 * time.Second})
	c := oip.NewClient("http://"+ln.Addr().String(), &http.Client{})
	type result struct {
		resp *oip.InferResponse
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := c.Infer(context.Background(), "slow", "", slowRequest())
		res <- result{r, err}
	}()
	select {
	case <-rt.started:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request never reached the model")
	}

	cancel() // what SIGTERM does in the CLI

	// The listener closes: new connections are refused...
	var dialErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			conn.Close()
			continue
		}
		// A dial racing the close may be reset from the backlog instead.
		if dialErr = err; errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
	}
	if !errors.Is(dialErr, syscall.ECONNREFUSED) {
		t.Fatalf("new connection after shutdown began: %v", dialErr)
	}
	// ...while the in-flight request keeps Serve from returning.
	select {
	case err := <-done:
		t.Fatalf("Serve returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(rt.release)
	r := <-res
	if r.err != nil {
		t.Fatalf("in-flight request failed: %v", r.err)
	}
	if r.resp.ID != "slow" || r.resp.ModelName != "slow" {
		t.Fatalf("response %+v", r.resp)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the last request")
	}
}

func TestShutdownTimeout(t *testing.T) {
	_, rt, ln, cancel, done := serveReal(t, Config{ShutdownTimeout: 200 * time.Millisecond})
	defer close(rt.release)
	c := oip.NewClient("http://"+ln.Addr().String(), &http.Client{})
	go c.Infer(context.Background(), "slow", "", slowRequest())
	<-rt.started
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "graceful shutdown") {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve ignored its shutdown timeout")
	}
}

func TestClientCancellationReachesModel(t *testing.T) {
	_, rt, ln, _, _ := serveReal(t, Config{})
	defer close(rt.release)
	c := oip.NewClient("http://"+ln.Addr().String(), &http.Client{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Infer(ctx, "slow", "", slowRequest())
		errc <- err
	}()
	<-rt.started
	cancel()
	select {
	case err := <-rt.sawCtx:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("model saw %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the model never saw the client's cancellation")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
}
