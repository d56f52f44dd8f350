package drill

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

func TestProbesAreDeterministic(t *testing.T) {
	srv := startFake(t, &fakeModel{})
	gen := func(seed uint64) *ProbeSet {
		p, err := NewProbeSet(t.Context(), nil, srv.URL, "iris", 8, seed)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := gen(1), gen(1), gen(2)
	if a.Len() != 8 || a.Model() != "iris" {
		t.Fatalf("len %d model %s, want 8 iris", a.Len(), a.Model())
	}
	differs := false
	for i := 0; i < a.Len(); i++ {
		if !bytes.Equal(a.Body(i), b.Body(i)) {
			t.Errorf("probe %d differs for the same seed:\n%s\n%s", i, a.Body(i), b.Body(i))
		}
		differs = differs || !bytes.Equal(a.Body(i), c.Body(i))
		req, err := oip.DecodeInferRequest(a.Body(i))
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		in := req.Inputs["input"]
		if in == nil || len(in.Shape) != 2 || in.Shape[0] != 1 || in.Shape[1] != 4 {
			t.Fatalf("probe %d: input %+v, want FP32 [1,4]", i, in)
		}
		for _, v := range in.F32 {
			if v < 0 || v >= 8 {
				t.Errorf("probe %d: value %v outside [0,8)", i, v)
			}
		}
	}
	if !differs {
		t.Error("seeds 1 and 2 gave the same probes")
	}
}

func TestNewProbeSetErrors(t *testing.T) {
	meta := func(dt string, shape ...int64) *oip.ModelMetadata {
		return &oip.ModelMetadata{Name: "iris", Inputs: []oip.TensorMetadata{{Name: "x", Datatype: dt, Shape: shape}}}
	}
	for _, tc := range []struct {
		name, model string
		meta        *oip.ModelMetadata
		want        string
	}{
		{"missing model", "nosuch", nil, "model nosuch not found on the gateway"},
		{"unsupported datatype", "iris", meta("BYTES", -1), "datatype BYTES is not supported"},
		{"too many values", "iris", meta("FP32", 1, 1000, 1000), "too large for a probe"},
		{"body too large", "iris", meta("FP64", -1, 300000), "more than the 1048576 a probe may have"},
		{"no inputs", "iris", &oip.ModelMetadata{Name: "iris"}, "lists no inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, &fakeModel{meta: tc.meta})
			_, err := NewProbeSet(t.Context(), nil, srv.URL, tc.model, 3, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if tc.model == "nosuch" && !errors.Is(err, ErrModelNotFound) {
				t.Errorf("error %v is not ErrModelNotFound", err)
			}
		})
	}
	if _, err := NewProbeSet(t.Context(), nil, "http://127.0.0.1:1", "iris", 3, 1); err == nil || !strings.Contains(err.Error(), "fetch metadata of model iris") {
		t.Errorf("unreachable gateway: %v", err)
	}
}

// answer posts probe i to the fake and returns the answer body.
func answer(t *testing.T, url string, p *ProbeSet, i int) []byte {
	t.Helper()
	resp, err := http.Post(url+p.InferPath(), "application/json", bytes.NewReader(p.Body(i)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.Bytes()
}

func TestCheck(t *testing.T) {
	f := &fakeModel{}
	srv := startFake(t, f)
	p, err := NewProbeSet(t.Context(), nil, srv.URL, "iris", 4, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(0, []byte("{}")); !errors.Is(err, ErrNotLearned) {
		t.Fatalf("check before learning: %v, want ErrNotLearned", err)
	}
	if err := p.Learn(t.Context(), nil, srv.URL); err != nil {
		t.Fatal(err)
	}
	right := answer(t, srv.URL, p, 1)
	if err := p.Check(1, right); err != nil {
		t.Fatalf("the right answer: %v", err)
	}
	if err := p.Check(2, right); err == nil && !bytes.Equal(p.Body(1), p.Body(2)) {
		t.Error("probe 1's answer passed as probe 2's")
	}
	var base oip.InferResponse
	if err := json.Unmarshal(right, &base); err != nil {
		t.Fatal(err)
	}
	probs := func(r *oip.InferResponse) []float32 {
		var v []float32
		json.Unmarshal(r.Outputs[0].Data, &v)
		return v
	}
	var label []int64
	json.Unmarshal(base.Outputs[1].Data, &label)
	edit := func(change func(r *oip.InferResponse)) []byte {
		var r oip.InferResponse
		json.Unmarshal(right, &r)
		change(&r)
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	setProbs := func(scale float32) func(r *oip.InferResponse) {
		return func(r *oip.InferResponse) {
			v := probs(r)
			v[0] *= scale
			r.Outputs[0].Data, _ = json.Marshal(v)
		}
	}
	if err := p.Check(1, edit(setProbs(1+1e-6))); err != nil {
		t.Errorf("a float within tolerance: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(r *oip.InferResponse)
		want   string
	}{
		{"perturbed float", setProbs(1.01), "output probabilities[0] = "},
		{"changed label", func(r *oip.InferResponse) {
			r.Outputs[1].Data, _ = json.Marshal([]int64{(label[0] + 1) % 3})
		}, "output label[0] = "},
		{"missing output", func(r *oip.InferResponse) { r.Outputs = r.Outputs[:1] }, "output label missing"},
		{"extra output", func(r *oip.InferResponse) {
			r.Outputs = append(r.Outputs, oip.ResponseOutput{Name: "extra", Datatype: "BOOL", Shape: []int64{1}, Data: json.RawMessage("[true]")})
		}, "unexpected output extra"},
		{"wrong shape", func(r *oip.InferResponse) { r.Outputs[0].Shape = []int64{3, 1} }, "output probabilities shape [3 1], want [1,3]"},
		{"wrong datatype", func(r *oip.InferResponse) { r.Outputs[1].Datatype = "INT32" }, "output label datatype INT32, want INT64"},
		{"duplicate output", func(r *oip.InferResponse) { r.Outputs = append(r.Outputs, r.Outputs[1]) }, "given twice"},
	} {
		if err := p.Check(1, edit(tc.change)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if err := p.Check(1, []byte("<html>oops")); err == nil {
		t.Error("a body that is not JSON passed")
	}
	if err := p.Check(9, right); err == nil {
		t.Error("probe 9 of 4 passed")
	}
	t.Logf("label error reads: %v", p.Check(1, edit(func(r *oip.InferResponse) {
		r.Outputs[1].Data, _ = json.Marshal([]int64{(label[0] + 1) % 3})
	})))
}

func TestLearnNeedsRightAnswers(t *testing.T) {
	f := &fakeModel{}
	srv := startFake(t, f)
	p, err := NewProbeSet(t.Context(), nil, srv.URL, "iris", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.mode.Store(modeError)
	if err := p.Learn(t.Context(), nil, srv.URL); err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("learn from a failing server: %v", err)
	}
	if p.Learned() {
		t.Error("a failed Learn left the probes learned")
	}
}

func TestVerify(t *testing.T) {
	f := &fakeModel{}
	srv := startFake(t, f)
	p := learnedProbes(t, srv.URL, 6)
	defer func(d time.Duration) { verifyBackoff = d }(verifyBackoff)
	verifyBackoff = time.Millisecond

	f.mode.Store(modeFlaky) // every probe fails once, then is answered
	identical, mismatches, err := p.Verify(t.Context(), nil, srv.URL)
	if err != nil || identical != 6 || len(mismatches) != 0 {
		t.Fatalf("flaky site: identical %d, mismatches %v, err %v; want 6, none", identical, mismatches, err)
	}

	f.mode.Store(modeWrong)
	identical, mismatches, err = p.Verify(t.Context(), nil, srv.URL)
	if err != nil || identical != 0 || len(mismatches) != 6 || !strings.Contains(mismatches[0], "probe 0: output label[0] = ") {
		t.Fatalf("wrong site: identical %d, mismatches %v, err %v", identical, mismatches, err)
	}

	before := f.served.Load()
	f.mode.Store(modeError)
	identical, mismatches, err = p.Verify(t.Context(), nil, srv.URL)
	if err != nil || identical != 0 || len(mismatches) != 6 || !strings.Contains(mismatches[5], "HTTP 500") {
		t.Fatalf("failing site: identical %d, mismatches %v, err %v", identical, mismatches, err)
	}
	if asked := f.served.Load() - before; asked != 6*verifyAttempts {
		t.Errorf("failing site asked %d times, want %d", asked, 6*verifyAttempts)
	}
}

func TestProbeSetJSON(t *testing.T) {
	srv := startFake(t, &fakeModel{})
	p := learnedProbes(t, srv.URL, 5)
	// Embedded and indented, as a runner would keep it.
	doc, err := json.MarshalIndent(map[string]any{"probes": p}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ Probes ProbeSet }
	if err := json.Unmarshal(doc, &back); err != nil {
		t.Fatal(err)
	}
	q := &back.Probes
	if q.Len() != 5 || q.Model() != "iris" || !q.Learned() {
		t.Fatalf("read back: len %d model %q learned %v", q.Len(), q.Model(), q.Learned())
	}
	for i := 0; i < 5; i++ {
		if !bytes.Equal(p.Body(i), q.Body(i)) {
			t.Errorf("probe %d body changed", i)
		}
		if err := q.Check(i, answer(t, srv.URL, p, i)); err != nil {
			t.Errorf("probe %d read back rejects the right answer: %v", i, err)
		}
	}
	identical, _, err := q.Verify(t.Context(), nil, srv.URL)
	if err != nil || identical != 5 {
		t.Errorf("verify with probes read back: %d identical, %v", identical, err)
	}

	// A changed digit anywhere breaks the checksum.
	raw, _ := json.Marshal(p)
	i := bytes.Index(raw, []byte(`"data":[`)) + len(`"data":[`)
	bad := bytes.Clone(raw)
	bad[i] = '9' - (bad[i]-'0'+1)%10
	var r ProbeSet
	if err := json.Unmarshal(bad, &r); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("tampered probes: %v, want a checksum error", err)
	}
	if r.Len() != 0 {
		t.Error("a refused set changed the receiver")
	}

	// Unlearned probes round-trip too and stay unlearned.
	u, err := NewProbeSet(t.Context(), nil, srv.URL, "iris", 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = json.Marshal(u)
	var v ProbeSet
	if err := json.Unmarshal(raw, &v); err != nil || v.Learned() || v.Len() != 2 {
		t.Errorf("unlearned round trip: %v, learned %v, len %d", err, v.Learned(), v.Len())
	}
}

func FuzzProbeSetUnmarshal(f *testing.F) {
	p, err := generateProbes("iris", []oip.TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}}, 2, 1)
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := json.Marshal(p)
	f.Add(raw)
	f.Add([]byte(`{"format":1,"checksum":"","set":{}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var q ProbeSet
		if err := json.Unmarshal(b, &q); err != nil {
			return
		}
		// Whatever was accepted must be usable and write back the same.
		for i := 0; i < q.Len(); i++ {
			q.Body(i)
			q.Check(i, []byte(`{"outputs":[]}`))
		}
		again, err := json.Marshal(&q)
		if err != nil {
			t.Fatal(err)
		}
		var r ProbeSet
		if err := json.Unmarshal(again, &r); err != nil || r.Len() != q.Len() {
			t.Fatalf("accepted set does not read back: %v", err)
		}
	})
}

func FuzzCheck(f *testing.F) {
	p, _ := generateProbes("iris", []oip.TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}}, 1, 1)
	right := `{"model_name":"iris","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,3],"data":[0.25,0.5,0.25]},{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}`
	var resp oip.InferResponse
	if err := json.Unmarshal([]byte(right), &resp); err != nil {
		f.Fatal(err)
	}
	want, err := decodeExpected(resp.Outputs)
	if err != nil {
		f.Fatal(err)
	}
	p.expected, p.want = [][]oip.ResponseOutput{resp.Outputs}, [][]namedTensor{want}
	f.Add([]byte(right))
	f.Add([]byte(`{"outputs":[{"name":"label","datatype":"INT64","shape":[1000000000],"data":[1]}]}`))
	f.Add([]byte(`{"outputs":[{"name":"label","datatype":"FP32","shape":[-1],"data":[1]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if p.Check(0, body) == nil && !json.Valid(body) {
			t.Fatal("an invalid body passed")
		}
	})
}

// BenchmarkCheck measures checking one answer of the sample model's shape,
// which the load does for every 200 it gets.
func BenchmarkCheck(b *testing.B) {
	p, _ := generateProbes("iris", []oip.TensorMetadata{{Name: "input", Datatype: "FP32", Shape: []int64{-1, 4}}}, 1, 1)
	right := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,3],"data":[0.0123,0.9,0.0877]},{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}`)
	var resp oip.InferResponse
	json.Unmarshal(right, &resp)
	want, err := decodeExpected(resp.Outputs)
	if err != nil {
		b.Fatal(err)
	}
	p.expected, p.want = [][]oip.ResponseOutput{resp.Outputs}, [][]namedTensor{want}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Check(0, right); err != nil {
			b.Fatal(err)
		}
	}
}
