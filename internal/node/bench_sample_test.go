package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/sample"
)

// benchClients is the number of concurrent HTTP clients in the sample-model
// benchmarks (GOMAXPROCS × this), 16 on a 2-core machine: the concurrency
// bench/load.sh uses.
const benchClients = 8

// sampleBody is an infer request for the sample model with batch rows of
// sample.Example(), as a client sends it.
func sampleBody(batch int) []byte {
	rows := sample.Example()
	data := make([][4]float32, batch)
	for i := range data {
		data[i] = rows[i%len(rows)]
	}
	b, err := json.Marshal(map[string]any{
		"id":     "bench",
		"inputs": []any{map[string]any{"name": sample.InputName, "datatype": "FP32", "shape": []int{batch, 4}, "data": data}},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// postLoop posts body to url from benchClients×GOMAXPROCS goroutines over
// kept-alive loopback connections and fails on any non-200 answer.
func postLoop(b *testing.B, url string, body []byte) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.SetParallelism(benchClients)
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
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// serveSample runs a node as `bulwark node` does (Serve on a TCP listener
// on 127.0.0.1, builtin runtime, the sample model pushed into a fresh
// store) and returns the infer URL once the node is ready.
func serveSample(b *testing.B) string {
	st, err := modelstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	pushBytes(b, st, sample.ModelName, sample.Build().ONNX, builtinInspector)
	srv, err := New(Config{Store: st, Runtime: builtin.New()})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		srv.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); !srv.Ready(); {
		if time.Now().After(deadline) {
			b.Fatalf("node not ready: %+v", srv.ModelStatus())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "http://" + ln.Addr().String() + "/v2/models/" + sample.ModelName + "/infer"
}

// serveBare runs the reference handler of bench/oipload's bare mode on a
// TCP listener on 127.0.0.1: it decodes the same request with
// encoding/json (the data into []float32) and writes a fixed answer.
func serveBare(b *testing.B) string {
	answer := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}`)
	type bareRequest struct {
		ID     string `json:"id"`
		Inputs []struct {
			Name     string          `json:"name"`
			Shape    []int           `json:"shape"`
			Datatype string          `json:"datatype"`
			Data     json.RawMessage `json:"data"`
		} `json:"inputs"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/models/{m}/infer", func(w http.ResponseWriter, r *http.Request) {
		var req bareRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		for _, in := range req.Inputs {
			var data []float32
			if err := json.Unmarshal(flattenJSON(in.Data), &data); err != nil {
				http.Error(w, `{"error":"bad data"}`, http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String() + "/v2/models/" + sample.ModelName + "/infer"
}

// flattenJSON turns a nested numeric JSON array into a flat one by dropping
// the inner brackets (as bench/oipload's bare handler does), so that
// encoding/json can decode it into []float32.
func flattenJSON(data []byte) []byte {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[[")) {
		return data
	}
	out := make([]byte, 0, len(data)+2)
	out = append(out, '[')
	for _, c := range data {
		if c != '[' && c != ']' {
			out = append(out, c)
		}
	}
	return append(out, ']')
}

// BenchmarkSampleHTTP posts infer requests for the sample model over
// loopback, to the node (server=node) and, in the same run, to the bare
// handler (server=bare), with batch 1 and batch 8. ns/op is wall time per
// request at 16 concurrent clients, so 1e9/ns_op is the throughput;
// `benchstat -col /server` puts the two servers side by side. Clients and
// server share the machine's cores.
func BenchmarkSampleHTTP(b *testing.B) {
	for _, batch := range []int{1, 8} {
		body := sampleBody(batch)
		if !strings.Contains(string(body), sample.InputName) {
			b.Fatal("bad body")
		}
		b.Run(fmt.Sprintf("batch=%d/server=node", batch), func(b *testing.B) { postLoop(b, serveSample(b), body) })
		b.Run(fmt.Sprintf("batch=%d/server=bare", batch), func(b *testing.B) { postLoop(b, serveBare(b), body) })
	}
}
