package oip

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// fakeServer speaks just enough of the protocol to exercise the client.
func fakeServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	errorJSON := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		w.Write(AppendError(nil, msg))
	}
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		errorJSON(w, 503, "models are still loading")
	})
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(ServerMetadata{Name: "fake", Version: "0", Extensions: []string{}})
	})
	mux.HandleFunc("GET /v2/models/{m}/versions/{v}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(ModelMetadata{Name: r.PathValue("m"), Versions: []string{r.PathValue("v")}, Platform: "onnx"})
	})
	mux.HandleFunc("GET /v2/models/{m}/ready", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("m") != "a b/c" {
			errorJSON(w, 404, "model "+r.PathValue("m")+" not found")
		}
	})
	mux.HandleFunc("GET /v2/models/gone/ready", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway) // a proxy's plain-text answer
	})
	mux.HandleFunc("POST /v2/models/{m}/infer", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			errorJSON(w, 400, "content type")
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := DecodeInferRequest(body)
		if err != nil {
			errorJSON(w, 400, err.Error())
			return
		}
		if req.ID == "slow" {
			<-r.Context().Done()
			return
		}
		resp := &Response{ModelName: r.PathValue("m"), ModelVersion: "1", ID: req.ID}
		for _, name := range req.InputOrder {
			resp.Outputs = append(resp.Outputs, Output{Name: name + "_out", Tensor: req.Inputs[name]})
		}
		b, err := AppendInferResponse(nil, resp)
		if err != nil {
			t.Error(err)
		}
		w.Write(b)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestClient(t *testing.T) {
	s := fakeServer(t)
	c := NewClient(s.URL+"/", s.Client())
	ctx := context.Background()

	if err := c.Live(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Ready(ctx)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || se.Message != "models are still loading" {
		t.Fatalf("ready: %v", err)
	}
	if err := c.ModelReady(ctx, "a b/c", ""); err != nil {
		t.Fatalf("escaped model name: %v", err)
	}
	if err := c.ModelReady(ctx, "nope", ""); StatusCode(err) != 404 || !strings.Contains(err.Error(), "model nope not found") {
		t.Fatalf("unknown model: %v", err)
	}
	if err := c.ModelReady(ctx, "gone", ""); StatusCode(err) != 502 || !strings.Contains(err.Error(), "bad gateway") {
		t.Fatalf("plain-text error: %v", err)
	}
	sm, err := c.ServerMetadata(ctx)
	if err != nil || sm.Name != "fake" {
		t.Fatalf("server metadata %+v %v", sm, err)
	}
	md, err := c.ModelMetadata(ctx, "iris", "7")
	if err != nil || md.Name != "iris" || md.Versions[0] != "7" {
		t.Fatalf("model metadata %+v %v", md, err)
	}

	x := tensor.FromInt64([]int{2, 2}, []int64{1, -2, 3, 1 << 60})
	in, err := NewInput("x", x)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Infer(ctx, "iris", "", &InferRequest{ID: "r1", Inputs: []RequestInput{in}})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := resp.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	if resp.ID != "r1" || resp.ModelName != "iris" || !reflect.DeepEqual(outs["x_out"], x) {
		t.Fatalf("infer: %+v %+v", resp, outs)
	}
	bad := RequestInput{Name: "x", Datatype: "BYTES", Shape: []int64{1}, Data: json.RawMessage(`["a"]`)}
	_, err = c.Infer(ctx, "iris", "", &InferRequest{Inputs: []RequestInput{bad}})
	if StatusCode(err) != 400 || !strings.Contains(err.Error(), `input "x": datatype BYTES is not supported`) {
		t.Fatalf("bad request: %v", err)
	}

	// The caller's context bounds a request.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = c.Infer(cctx, "iris", "", &InferRequest{ID: "slow", Inputs: []RequestInput{in}})
	if !errors.Is(err, context.DeadlineExceeded) || StatusCode(err) != 0 {
		t.Fatalf("timeout: %v", err)
	}
}

func TestClientResponseLimit(t *testing.T) {
	s := fakeServer(t)
	c := NewClient(s.URL, nil)
	c.MaxResponseBytes = 10
	if _, err := c.ServerMetadata(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewInputRejectsInvalidTensor(t *testing.T) {
	if _, err := NewInput("x", tensor.FromFloat32([]int{3}, []float32{1})); err == nil {
		t.Fatal("accepted a tensor whose data does not fill its shape")
	}
}
