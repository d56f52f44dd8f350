package node

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestHealthAndMetadata(t *testing.T) {
	n := newTestNode(t, Config{NodeName: "node-a", Version: "1.2.3"}, nil)
	ctx := context.Background()
	if err := n.c.Live(ctx); err != nil {
		t.Fatal(err)
	}
	// No model at all: live but not ready.
	if err := n.c.Ready(ctx); oip.StatusCode(err) != 503 || !strings.Contains(err.Error(), "no model version is ready") {
		t.Fatalf("ready with no models: %v", err)
	}
	push(t, n.store, "iris", "1", "scale=1")
	push(t, n.store, "iris", "2", "scale=2")
	if err := n.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	sm, err := n.c.ServerMetadata(ctx)
	if err != nil || sm.Name != "node-a" || sm.Version != "1.2.3" || sm.Extensions == nil {
		t.Fatalf("server metadata %+v %v", sm, err)
	}
	md, err := n.c.ModelMetadata(ctx, "iris", "")
	if err != nil {
		t.Fatal(err)
	}
	want := &oip.ModelMetadata{
		Name: "iris", Versions: []string{"1", "2"}, Platform: "onnx",
		Inputs:     []oip.TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 4}}},
		Outputs:    []oip.TensorMetadata{{Name: "y", Datatype: "FP32", Shape: []int64{-1, 4}}, {Name: "sum", Datatype: "FP32", Shape: []int64{-1}}},
		Parameters: oip.Parameters{"version": "2", "ready": true},
	}
	if !reflect.DeepEqual(md, want) {
		t.Fatalf("metadata\n got %+v\nwant %+v", md, want)
	}
	md, err = n.c.ModelMetadata(ctx, "iris", "1")
	if err != nil || md.Parameters["version"] != "1" {
		t.Fatalf("version metadata %+v %v", md, err)
	}
	if err := n.c.ModelReady(ctx, "iris", "1"); err != nil {
		t.Fatal(err)
	}
	if err := n.c.ModelReady(ctx, "iris", ""); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v2/models/nope", "/v2/models/iris/versions/9", "/v2/models/nope/ready", "/v2/models/iris/versions/9/ready"} {
		if code, msg := n.do(t, "GET", path, ""); code != 404 || msg == "" {
			t.Errorf("GET %s: %d %q", path, code, msg)
		}
	}
	if _, msg := n.do(t, "GET", "/v2/models/iris/versions/9", ""); !strings.Contains(msg, `versions: 1, 2`) {
		t.Errorf("unknown version message %q does not list the versions", msg)
	}
}

func TestNotReadyUntilLoaded(t *testing.T) {
	st, _ := modelstore.Open(t.TempDir())
	push(t, st, "m", "1", "scale=1")
	srv, err := New(Config{Store: st, Runtime: newFakeRuntime()})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{srv: srv}
	n.http = newHTTP(t, srv)
	if code, msg := n.do(t, "GET", "/v2/health/ready", ""); code != 503 || !strings.Contains(msg, "loading") {
		t.Fatalf("ready before load: %d %q", code, msg)
	}
	if code, _ := n.do(t, "POST", "/v2/models/m/infer", inferBody("", [][]float32{{1, 2, 3, 4}})); code != 503 {
		t.Fatalf("infer before load: %d", code)
	}
	if code, _ := n.do(t, "GET", "/v2/health/live", ""); code != 200 {
		t.Fatalf("live before load: %d", code)
	}
	if err := srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := n.do(t, "GET", "/v2/health/ready", ""); code != 200 || !srv.Ready() {
		t.Fatalf("ready after load: %d", code)
	}
}

func TestInfer(t *testing.T) {
	n := newTestNode(t, Config{}, func(st *modelstore.Store) {
		push(t, st, "m", "1", "scale=1")
		push(t, st, "m", "2", "scale=2")
	})
	ctx := context.Background()
	x := tensor.FromFloat32([]int{2, 4}, []float32{1, 2, 3, 4, 5, 6, 7, 8.5})
	in, err := oip.NewInput("x", x)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("latest when no version named", func(t *testing.T) {
		resp, err := n.c.Infer(ctx, "m", "", &oip.InferRequest{ID: "req-42", Inputs: []oip.RequestInput{in}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ModelName != "m" || resp.ModelVersion != "2" || resp.ID != "req-42" {
			t.Fatalf("envelope %+v", resp)
		}
		if len(resp.Outputs) != 2 || resp.Outputs[0].Name != "y" || resp.Outputs[1].Name != "sum" {
			t.Fatalf("outputs %+v", resp.Outputs)
		}
		got, err := resp.Tensors()
		if err != nil {
			t.Fatal(err)
		}
		if want := tensor.FromFloat32([]int{2, 4}, []float32{2, 4, 6, 8, 10, 12, 14, 17}); !reflect.DeepEqual(got["y"], want) {
			t.Fatalf("y = %+v", got["y"])
		}
		if want := tensor.FromFloat32([]int{2}, []float32{10, 26.5}); !reflect.DeepEqual(got["sum"], want) {
			t.Fatalf("sum = %+v", got["sum"])
		}
	})
	t.Run("named version and requested output", func(t *testing.T) {
		resp, err := n.c.Infer(ctx, "m", "1", &oip.InferRequest{Inputs: []oip.RequestInput{in}, Outputs: []oip.RequestOutput{{Name: "y"}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ModelVersion != "1" || resp.ID != "" || len(resp.Outputs) != 1 || resp.Outputs[0].Name != "y" {
			t.Fatalf("response %+v", resp)
		}
		y, _ := resp.Outputs[0].Tensor()
		if y.F32[7] != 8.5 {
			t.Fatalf("y = %v", y.F32)
		}
	})
	t.Run("nested and flat data agree", func(t *testing.T) {
		flat := `{"id":"f","inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[1,2,3,4,5,6,7,8]}]}`
		nested := `{"id":"f","inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[[1,2,3,4],[5,6,7,8]]}]}`
		c1, b1 := n.do(t, "POST", "/v2/models/m/versions/1/infer", flat)
		c2, b2 := n.do(t, "POST", "/v2/models/m/versions/1/infer", nested)
		if c1 != 200 || c2 != 200 || b1 != b2 {
			t.Fatalf("flat %d %s\nnested %d %s", c1, b1, c2, b2)
		}
		var resp oip.InferResponse
		if err := json.Unmarshal([]byte(b1), &resp); err != nil || resp.ID != "f" {
			t.Fatalf("%v %+v", err, resp)
		}
	})
}
