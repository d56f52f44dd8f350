package drill

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// Behaviours of the fake model's inference.
const (
	modeRight int32 = iota
	modeError       // 500
	modeWrong       // 200 with the label moved on by one
	modeHang        // no answer until the client gives up
	modeFlaky       // 503 every other request, right otherwise
)

// fakeModel imitates an OIP node serving an iris-like model: input "input"
// FP32 [-1,4], outputs "probabilities" FP32 [-1,3] and "label" INT64 [-1],
// computed from the input (label = int(sum of the row) % 3).
type fakeModel struct {
	mode   atomic.Int32
	served atomic.Int64
	// meta overrides the metadata answered (for generation errors).
	meta *oip.ModelMetadata
}

func (f *fakeModel) metadata() oip.ModelMetadata {
	if f.meta != nil {
		return *f.meta
	}
	return oip.ModelMetadata{
		Name: "iris", Versions: []string{"1"}, Platform: "onnx",
		Inputs:  []oip.TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}},
		Outputs: []oip.TensorMetadata{{Name: "probabilities", Datatype: "FP32", Shape: []int64{-1, 3}}, {Name: "label", Datatype: "INT64", Shape: []int64{-1}}},
	}
}

func (f *fakeModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v2/models/iris":
		json.NewEncoder(w).Encode(f.metadata())
	case r.Method == http.MethodPost && r.URL.Path == "/v2/models/iris/infer":
		f.infer(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write(oip.AppendError(nil, "model not found"))
	}
}

func (f *fakeModel) infer(w http.ResponseWriter, r *http.Request) {
	mode := f.mode.Load()
	count := f.served.Add(1)
	switch {
	case mode == modeError, mode == modeFlaky && count%2 == 1:
		status := http.StatusInternalServerError
		if mode == modeFlaky {
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		w.Write(oip.AppendError(nil, "injected failure"))
		return
	}
	// The server notices a client gone only once the body is read.
	body, _ := io.ReadAll(r.Body)
	if mode == modeHang {
		<-r.Context().Done()
		return
	}
	req, err := oip.DecodeInferRequest(body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		w.Write(oip.AppendError(nil, err.Error()))
		return
	}
	in := req.Inputs["input"]
	if in == nil || in.DType != tensor.Float32 || len(in.Shape) != 2 || in.Shape[1] != 4 {
		w.WriteHeader(http.StatusBadRequest)
		w.Write(oip.AppendError(nil, "want input FP32 [n,4]"))
		return
	}
	rows := in.Shape[0]
	probs, labels := make([]float32, 0, rows*3), make([]int64, rows)
	for i := 0; i < rows; i++ {
		var sum float64
		for _, v := range in.F32[i*4 : i*4+4] {
			sum += float64(v)
		}
		labels[i] = int64(sum) % 3
		if mode == modeWrong {
			labels[i] = (labels[i] + 1) % 3
		}
		e := [3]float64{math.Exp(math.Sin(sum)), math.Exp(math.Cos(sum)), 1}
		total := e[0] + e[1] + e[2]
		for _, x := range e {
			probs = append(probs, float32(x/total))
		}
	}
	out, err := oip.AppendInferResponse(nil, &oip.Response{ModelName: "iris", ModelVersion: "1", Outputs: []oip.Output{
		{Name: "probabilities", Tensor: tensor.FromFloat32([]int{rows, 3}, probs)},
		{Name: "label", Tensor: tensor.FromInt64([]int{rows}, labels)},
	}})
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// startFake serves f on a fresh local port.
func startFake(t *testing.T, f *fakeModel) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv
}

// serveOn serves f on addr (to bring a gateway back at the address it
// had); the returned func stops it.
func serveOn(t *testing.T, addr string, f *fakeModel) func() {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: f}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Shutdown(context.Background())
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// learnedProbes generates n probes for the fake at url and learns them.
func learnedProbes(t *testing.T, url string, n int) *ProbeSet {
	t.Helper()
	p, err := NewProbeSet(t.Context(), http.DefaultClient, url, "iris", n, 42)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Learn(t.Context(), http.DefaultClient, url); err != nil {
		t.Fatal(err)
	}
	return p
}
