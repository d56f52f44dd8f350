package drill

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/node"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/sample"
)

// serveSampleNode runs a real node, as `bulwark node` does, serving the
// sample iris model from a fresh store, and returns its base URL.
func serveSampleNode(t *testing.T) string {
	t.Helper()
	st, err := modelstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "iris.onnx")
	if err := os.WriteFile(src, sample.Build().ONNX, 0o644); err != nil {
		t.Fatal(err)
	}
	inspect := func(_ context.Context, path string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", nil, nil, err
		}
		m, err := builtin.LoadBytes(b)
		if err != nil {
			return "", nil, nil, err
		}
		specs := func(in []runtime.TensorSpec) []modelstore.IOSpec {
			out := make([]modelstore.IOSpec, len(in))
			for i, s := range in {
				out[i] = modelstore.IOSpec{Name: s.Name, Datatype: s.DType.String(), Shape: s.Shape}
			}
			return out
		}
		sig := m.Signature()
		return "onnx", specs(sig.Inputs), specs(sig.Outputs), nil
	}
	if _, err := st.Push(t.Context(), sample.ModelName, src, inspect, modelstore.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	srv, err := node.New(node.Config{Store: st, Runtime: builtin.New()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	waitFor(t, "the node to load the sample model", srv.Ready)
	return "http://" + ln.Addr().String()
}

// TestProbesAndLoadOnRealNode runs the probes and the load against a real
// node serving the sample model: the probes fall in more than one class,
// every answer under load is right, and Verify finds them identical.
func TestProbesAndLoadOnRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the sample model and serves it")
	}
	url := serveSampleNode(t)
	probes, err := NewProbeSet(t.Context(), nil, url, sample.ModelName, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := probes.Learn(t.Context(), nil, url); err != nil {
		t.Fatal(err)
	}
	classes := map[int64]bool{}
	for i := range probes.Len() {
		var labels []int64
		for _, o := range probes.expected[i] {
			if o.Name == sample.LabelName {
				json.Unmarshal(o.Data, &labels)
			}
		}
		if len(labels) != 1 {
			t.Fatalf("probe %d: labels %v, want one", i, labels)
		}
		classes[labels[0]] = true
	}
	if len(classes) < 2 {
		t.Errorf("the probes fall in classes %v only, want at least two of the three", classes)
	}

	l, err := StartLoad(t.Context(), LoadConfig{BaseURL: url, Rate: 100, Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "100 answers", func() bool { return l.Samples() >= 100 })
	l.Stop()
	all := checkAccounting(t, l)
	if all.Failed != 0 || all.Sent < 100 {
		t.Errorf("real node under load: %+v", all)
	}
	identical, mismatches, err := probes.Verify(t.Context(), nil, url)
	if err != nil || identical != probes.Len() || len(mismatches) != 0 {
		t.Errorf("verify: %d identical, mismatches %v, err %v", identical, mismatches, err)
	}
	t.Logf("real node at 100 rps: %d requests, p50 %.2fms p99 %.2fms, classes %v", all.Sent, all.P50, all.P99, classes)
}
