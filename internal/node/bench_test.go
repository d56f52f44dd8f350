package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
)

const benchBody = `{"id":"b","inputs":[{"name":"x","datatype":"FP32","shape":[8,4],"data":[[5.1,3.5,1.4,0.2],[4.9,3,1.4,0.2],[6.2,3.4,5.4,2.3],[5.9,3,5.1,1.8],[5.5,2.3,4,1.3],[6.5,2.8,4.6,1.5],[5.7,2.8,4.5,1.3],[6.3,3.3,6,2.5]]}]}`

// benchHTTP posts benchBody to url from parallel clients over loopback.
func benchHTTP(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	body := []byte(benchBody)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkBareHandler is the reference the node is held to: net/http
// decoding the same body with encoding/json and writing a fixed answer.
func BenchmarkBareHandler(b *testing.B) {
	answer := []byte(`{"model_name":"m","model_version":"1","id":"b","outputs":[{"name":"y","datatype":"FP32","shape":[8,3],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24]}]}`)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer hs.Close()
	benchHTTP(b, hs.URL)
}

func benchNode(b *testing.B, name string, model []byte, rt Config) {
	st, err := modelstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	pushBytes(b, st, name, model, builtinInspector)
	rt.Store = st
	srv, err := New(rt)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Reload(b.Context()); err != nil {
		b.Fatal(err)
	}
	if !srv.Ready() {
		b.Fatalf("not ready: %+v", srv.ModelStatus())
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	benchHTTP(b, hs.URL+"/v2/models/"+name+"/infer")
}

// BenchmarkNodeInfer serves a real 4→3 linear ONNX model (MatMul + Add,
// batch 8) through the builtin runtime.
func BenchmarkNodeInfer(b *testing.B) {
	benchNode(b, "linear", linearModel("MatMul"), Config{Runtime: builtin.New()})
}
