package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// fakeRuntime "loads" a model from a one-line text file:
//
//	scale=K   y = K·x and sum = row sums, for x FP32 [-1,4]
//	block     like scale=1, but Infer waits for release (or cancellation)
//	fail      Infer returns a plain error
//	panic     Load panics
//	anything else fails to parse
type fakeRuntime struct {
	started chan struct{} // a blocking Infer has begun
	release chan struct{} // lets blocking Infers finish
	sawCtx  chan error    // a blocking Infer reports a cancelled context here
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{started: make(chan struct{}, 16), release: make(chan struct{}), sawCtx: make(chan error, 16)}
}

func (*fakeRuntime) Name() string { return "fake" }

func (rt *fakeRuntime) Load(_ context.Context, src runtime.Source) (runtime.Model, error) {
	b, err := os.ReadFile(src.Path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(b))
	m := &fakeModel{rt: rt, scale: 1}
	switch {
	case strings.HasPrefix(text, "scale="):
		k, err := strconv.ParseFloat(strings.TrimPrefix(text, "scale="), 32)
		if err != nil {
			return nil, fmt.Errorf("parse model: %v", err)
		}
		m.scale = float32(k)
	case text == "block":
		m.block = true
	case text == "fail":
		m.fail = true
	case text == "panic":
		panic("corrupt graph")
	default:
		return nil, errors.New("parse model: invalid protobuf wire format")
	}
	return m, nil
}

type fakeModel struct {
	rt    *fakeRuntime
	scale float32
	block bool
	fail  bool
}

var fakeSig = runtime.Signature{
	Inputs: []runtime.TensorSpec{{Name: "x", DType: tensor.Float32, Shape: []int{-1, 4}}},
	Outputs: []runtime.TensorSpec{
		{Name: "y", DType: tensor.Float32, Shape: []int{-1, 4}},
		{Name: "sum", DType: tensor.Float32, Shape: []int{-1}},
	},
}

func (m *fakeModel) Signature() runtime.Signature { return fakeSig }
func (m *fakeModel) Close() error                 { return nil }

func (m *fakeModel) Infer(ctx context.Context, in map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	if m.fail {
		return nil, errors.New("kernel exploded")
	}
	if m.block {
		m.rt.started <- struct{}{}
		select {
		case <-m.rt.release:
		case <-ctx.Done():
			m.rt.sawCtx <- ctx.Err()
			return nil, ctx.Err()
		}
	}
	x := in["x"]
	rows := x.Shape[0]
	y := tensor.New(tensor.Float32, x.Shape)
	sum := tensor.New(tensor.Float32, []int{rows})
	for i, v := range x.F32 {
		y.F32[i] = v * m.scale
		sum.F32[i/4] += v
	}
	all := map[string]*tensor.Tensor{"y": y, "sum": sum}
	if len(outputs) == 0 {
		return all, nil
	}
	out := map[string]*tensor.Tensor{}
	for _, o := range outputs {
		out[o] = all[o]
	}
	return out, nil
}

// fakeInspector accepts any file, as an older or laxer pusher might: the
// runtime is what finds out a model cannot be served.
func fakeInspector(context.Context, string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	return "onnx",
		[]modelstore.IOSpec{{Name: "x", Datatype: "FP32", Shape: []int{-1, 4}}},
		[]modelstore.IOSpec{{Name: "y", Datatype: "FP32", Shape: []int{-1, 4}}, {Name: "sum", Datatype: "FP32", Shape: []int{-1}}},
		nil
}

// push stores content as model name:version.
func push(t *testing.T, st *modelstore.Store, name, version, content string) *modelstore.Manifest {
	t.Helper()
	src := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := st.Push(context.Background(), name, src, fakeInspector, modelstore.PushOptions{Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// corrupt flips one byte of a stored version's artifact, as bit rot would.
func corrupt(t *testing.T, st *modelstore.Store, m *modelstore.Manifest) {
	t.Helper()
	p := st.Path(m, m.Primary)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type testNode struct {
	srv   *Server
	http  *httptest.Server
	store *modelstore.Store
	rt    *fakeRuntime
	c     *oip.Client
}

// newTestNode opens a store, lets setup fill it, loads it and serves it on
// a real HTTP server.
func newTestNode(t *testing.T, cfg Config, setup func(st *modelstore.Store)) *testNode {
	t.Helper()
	st, err := modelstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(st)
	}
	rt := newFakeRuntime()
	cfg.Store = st
	if cfg.Runtime == nil {
		cfg.Runtime = rt
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &testNode{srv: srv, http: hs, store: st, rt: rt, c: oip.NewClient(hs.URL, hs.Client())}
}

// do sends a raw request and returns the status and body, checking that
// every error is JSON {"error": ...}.
func (n *testNode) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || path != "/metrics" {
		if ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	if resp.StatusCode >= 400 {
		var e oip.Error
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Error == "" {
			t.Errorf("%s %s: error body %q is not {\"error\": ...}", method, path, b)
		}
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}

func inferBody(id string, rows [][]float32) string {
	b, _ := json.Marshal(map[string]any{
		"id":     id,
		"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{len(rows), 4}, "data": rows}},
	})
	return string(b)
}

func newHTTP(t *testing.T, srv *Server) *httptest.Server {
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return hs
}
