package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGatewayOverhead compares an inference request sent straight to
// a trivial replica with the same request through the gateway; the
// difference is what the gateway costs per request.
func BenchmarkGatewayOverhead(b *testing.B) {
	const answer = `{"model_name":"iris","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1,2]}]}`
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	defer replica.Close()
	p := DefaultPolicy()
	p.Health.Interval = 1 << 62 // no checks during the measurement
	cfg := &Config{Defaults: DefaultPolicy(), Models: map[string]ModelConfig{
		"iris": {Replicas: []ReplicaConfig{{Address: replica.URL}}, Policy: p}}}
	g, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Start(ctx)
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()

	body := `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(b *testing.B, base string) {
		url := base + "/v2/models/iris/infer"
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, replica.URL) })
	b.Run("gateway", func(b *testing.B) { run(b, gw.URL) })
}
