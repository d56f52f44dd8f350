package node

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func TestFailedVersionsAreIsolated(t *testing.T) {
	var corrupted *modelstore.Manifest
	n := newTestNode(t, Config{}, func(st *modelstore.Store) {
		push(t, st, "good", "1", "scale=3")
		corrupted = push(t, st, "corrupt", "1", "scale=1")
		corrupt(t, st, corrupted)
		push(t, st, "broken", "1", "this is not a model")
		push(t, st, "crashy", "1", "panic")
		push(t, st, "mixed", "1", "scale=1")
		push(t, st, "mixed", "2", "garbage")
	})
	ctx := context.Background()
	if err := n.c.Ready(ctx); err != nil {
		t.Fatalf("node not ready though one model is: %v", err)
	}
	x, _ := oip.NewInput("x", tensor.FromFloat32([]int{1, 4}, []float32{1, 2, 3, 4}))
	resp, err := n.c.Infer(ctx, "good", "", &oip.InferRequest{Inputs: []oip.RequestInput{x}})
	if err != nil {
		t.Fatal(err)
	}
	if y, _ := resp.Outputs[0].Tensor(); y.F32[3] != 12 {
		t.Fatalf("good model answered %v", y.F32)
	}

	reasons := map[string]string{
		"corrupt": "checksum mismatch",
		"broken":  "parse model: invalid protobuf",
		"crashy":  "runtime panicked: corrupt graph",
	}
	for model, reason := range reasons {
		md, err := n.c.ModelMetadata(ctx, model, "1")
		if err != nil {
			t.Fatalf("%s metadata: %v", model, err)
		}
		if md.Parameters["ready"] != false || !strings.Contains(md.Parameters["reason"].(string), reason) {
			t.Errorf("%s metadata parameters %v, want reason %q", model, md.Parameters, reason)
		}
		if len(md.Inputs) != 1 || md.Inputs[0].Name != "x" {
			t.Errorf("%s metadata lacks the manifest's inputs: %+v", model, md.Inputs)
		}
		err = n.c.ModelReady(ctx, model, "")
		if oip.StatusCode(err) != 503 || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s ready: %v", model, err)
		}
	}
	// A bad latest version does not stop the good one it replaced from
	// being served by name, and metadata still lists both.
	if err := n.c.ModelReady(ctx, "mixed", "1"); err != nil {
		t.Fatal(err)
	}
	if err := n.c.ModelReady(ctx, "mixed", ""); oip.StatusCode(err) != 503 {
		t.Fatalf("latest of mixed: %v", err)
	}
	if md, _ := n.c.ModelMetadata(ctx, "mixed", ""); strings.Join(md.Versions, ",") != "1,2" {
		t.Fatalf("versions %v", md.Versions)
	}

	var notReady []string
	for _, st := range n.srv.ModelStatus() {
		if !st.Ready {
			notReady = append(notReady, st.Name+":"+st.Version)
			if st.Reason == "" {
				t.Errorf("%s:%s not ready without a reason", st.Name, st.Version)
			}
		}
	}
	if strings.Join(notReady, " ") != "broken:1 corrupt:1 crashy:1 mixed:2" {
		t.Fatalf("not ready: %v", notReady)
	}
	code, metrics := n.do(t, "GET", "/metrics", "")
	if code != 200 || !strings.Contains(metrics, `bulwark_node_model_ready{model="corrupt",version="1"} 0`) ||
		!strings.Contains(metrics, `bulwark_node_model_ready{model="good",version="1"} 1`) {
		t.Fatalf("readiness gauge missing:\n%s", metrics)
	}

	// Restoring the file and reloading brings the version back; a newly
	// pushed version is loaded and becomes the latest.
	p := n.store.Path(corrupted, corrupted.Primary)
	if err := os.WriteFile(p, []byte("scale=1"), 0o644); err != nil {
		t.Fatal(err)
	}
	push(t, n.store, "good", "2", "scale=5")
	if err := n.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.c.ModelReady(ctx, "corrupt", "1"); err != nil {
		t.Fatalf("repaired version: %v", err)
	}
	resp, err = n.c.Infer(ctx, "good", "", &oip.InferRequest{Inputs: []oip.RequestInput{x}})
	if err != nil || resp.ModelVersion != "2" {
		t.Fatalf("after reload: %v %+v", err, resp)
	}
}

func TestMetrics(t *testing.T) {
	n := newTestNode(t, Config{}, func(st *modelstore.Store) { push(t, st, "m", "1", "scale=1") })
	ok := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`
	n.do(t, "POST", "/v2/models/m/infer", ok)
	n.do(t, "POST", "/v2/models/m/infer", ok)
	n.do(t, "POST", "/v2/models/m/infer", `{`)
	n.do(t, "POST", "/v2/models/whatever/infer", ok)
	_, body := n.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`bulwark_node_infer_requests_total{code="2xx",model="m",version="1"} 2`,
		`bulwark_node_infer_requests_total{code="4xx",model="m",version="1"} 1`,
		`bulwark_node_infer_errors_total{kind="bad_request",model="m",version="1"} 1`,
		`bulwark_node_infer_errors_total{kind="not_found",model="_unknown",version="_unknown"} 1`,
		`bulwark_node_infer_duration_seconds_count{model="m",version="1"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Each server has its own registry: a second one starts from zero.
	n2 := newTestNode(t, Config{}, func(st *modelstore.Store) { push(t, st, "m", "1", "scale=1") })
	if _, body := n2.do(t, "GET", "/metrics", ""); !strings.Contains(body, `bulwark_node_infer_requests_total{code="2xx",model="m",version="1"} 0`) {
		t.Error("second server shares the first one's counters")
	}
}
