package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// MaxProbeBytes bounds one probe's request body: a probe is a small batch-1
// request, and a model whose inputs need more is not one a drill can load
// steadily.
const MaxProbeBytes = 1 << 20

// maxAnswerBytes bounds an answer read while learning or verifying.
const maxAnswerBytes = 16 << 20

var (
	// ErrModelNotFound: the gateway does not know the model.
	ErrModelNotFound = errors.New("model not found")
	// ErrNotLearned: the probes' expected answers are not known yet.
	ErrNotLearned = errors.New("probes have not learned their answers")
)

// ProbeSet is a fixed set of inference requests for one model and, once
// learned, the answer each must get. The load sends the probes round-robin
// and checks every answer; after a disaster, Verify asks the recovered site
// each probe once. A ProbeSet is read-only once learned and then safe for
// concurrent use.
type ProbeSet struct {
	model    string
	requests []oip.InferRequest
	bodies   [][]byte
	// expected[i] are probe i's outputs as the server sent them (for
	// marshalling); want[i] the same decoded (for comparing). Both nil
	// until learned.
	expected [][]oip.ResponseOutput
	want     [][]namedTensor
}

// namedTensor is one decoded expected output.
type namedTensor struct {
	name string
	t    *tensor.Tensor
}

// NewProbeSet reads the model's metadata from the gateway at baseURL and
// generates n requests from seed: the same seed and metadata always give
// the same probes. Every dynamic dimension is 1 (batch 1). Floats are drawn
// in [0, 8) with one decimal, like measurements in cm (for the sample iris
// model they fall in every class), integers in [0, 10), bools at random.
func NewProbeSet(ctx context.Context, client *http.Client, baseURL, model string, n int, seed uint64) (*ProbeSet, error) {
	if n <= 0 {
		return nil, fmt.Errorf("probes for model %s: need at least one probe, got %d", model, n)
	}
	meta, err := newOIPClient(baseURL, client).ModelMetadata(ctx, model, "")
	if oip.StatusCode(err) == http.StatusNotFound {
		return nil, fmt.Errorf("model %s not found on the gateway: %w", model, ErrModelNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch metadata of model %s: %w", model, err)
	}
	return generateProbes(model, meta.Inputs, n, seed)
}

// generateProbes makes n requests for inputs, deterministically from seed.
func generateProbes(model string, inputs []oip.TensorMetadata, n int, seed uint64) (*ProbeSet, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("probes for model %s: its metadata lists no inputs", model)
	}
	p := &ProbeSet{model: model}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < n; i++ {
		req := oip.InferRequest{Inputs: make([]oip.RequestInput, 0, len(inputs))}
		for _, in := range inputs {
			t, err := randomInput(in, rng)
			if err != nil {
				return nil, fmt.Errorf("probes for model %s: %w", model, err)
			}
			wire, err := oip.NewInput(in.Name, t)
			if err != nil {
				return nil, fmt.Errorf("probes for model %s: %w", model, err)
			}
			req.Inputs = append(req.Inputs, wire)
		}
		body, err := json.Marshal(&req)
		if err != nil {
			return nil, fmt.Errorf("probes for model %s: encode request: %w", model, err)
		}
		if len(body) > MaxProbeBytes {
			return nil, fmt.Errorf("probes for model %s: a request is %d bytes, more than the %d a probe may have", model, len(body), MaxProbeBytes)
		}
		p.requests = append(p.requests, req)
		p.bodies = append(p.bodies, body)
	}
	return p, nil
}

// randomInput draws one input tensor of batch 1.
func randomInput(in oip.TensorMetadata, rng *rand.Rand) (*tensor.Tensor, error) {
	dt, err := oip.ParseDatatype(in.Datatype)
	if err != nil {
		return nil, fmt.Errorf("input %q: probes cannot be generated: %w", in.Name, err)
	}
	shape := make([]int, len(in.Shape))
	count := 1
	for i, d := range in.Shape {
		switch {
		case d == -1:
			d = 1
		case d < 0:
			return nil, fmt.Errorf("input %q: shape %v has an invalid dimension %d", in.Name, in.Shape, d)
		}
		// Each value takes at least two bytes of JSON, so this refuses a
		// too large input before allocating it.
		if d > 0 && int64(count)*d > MaxProbeBytes/2 {
			return nil, fmt.Errorf("input %q: shape %v is too large for a probe (more than %d bytes)", in.Name, in.Shape, MaxProbeBytes)
		}
		shape[i] = int(d)
		count *= int(d)
	}
	t := tensor.New(dt, shape)
	for i := 0; i < count; i++ {
		switch dt {
		case tensor.Float32:
			t.F32[i] = float32(rng.IntN(80)) / 10
		case tensor.Float64:
			t.F64[i] = float64(rng.IntN(80)) / 10
		case tensor.Int32:
			t.I32[i] = int32(rng.IntN(10))
		case tensor.Int64:
			t.I64[i] = int64(rng.IntN(10))
		case tensor.Bool:
			t.Bool[i] = rng.IntN(2) == 1
		}
	}
	return t, nil
}

// Model is the model the probes are for.
func (p *ProbeSet) Model() string { return p.model }

// Len is the number of probes.
func (p *ProbeSet) Len() int { return len(p.bodies) }

// Body is probe i's request body. The caller must not change it.
func (p *ProbeSet) Body(i int) []byte { return p.bodies[i] }

// Learned says whether the expected answers are known.
func (p *ProbeSet) Learned() bool { return p.want != nil }

// InferPath is the path the probes are posted to.
func (p *ProbeSet) InferPath() string { return "/v2/models/" + url.PathEscape(p.model) + "/infer" }

// Learn sends every probe to the server at baseURL once and records its
// answer as the expected one. Every probe must get 200 with outputs.
func (p *ProbeSet) Learn(ctx context.Context, client *http.Client, baseURL string) error {
	c := newOIPClient(baseURL, client)
	expected := make([][]oip.ResponseOutput, len(p.requests))
	want := make([][]namedTensor, len(p.requests))
	for i := range p.requests {
		resp, err := c.Infer(ctx, p.model, "", &p.requests[i])
		if err != nil {
			return fmt.Errorf("learn probe %d of model %s: %w", i, p.model, err)
		}
		w, err := decodeExpected(resp.Outputs)
		if err != nil {
			return fmt.Errorf("learn probe %d of model %s: %w", i, p.model, err)
		}
		expected[i], want[i] = resp.Outputs, w
	}
	p.expected, p.want = expected, want
	return nil
}

// decodeExpected decodes the outputs of an answer taken as the right one.
func decodeExpected(outs []oip.ResponseOutput) ([]namedTensor, error) {
	if len(outs) == 0 {
		return nil, errors.New("the answer has no outputs")
	}
	w := make([]namedTensor, len(outs))
	seen := make(map[string]bool, len(outs))
	for i := range outs {
		if seen[outs[i].Name] {
			return nil, fmt.Errorf("the answer has output %q twice", outs[i].Name)
		}
		seen[outs[i].Name] = true
		t, err := outs[i].Tensor()
		if err != nil {
			return nil, err
		}
		w[i] = namedTensor{name: outs[i].Name, t: t}
	}
	return w, nil
}

// verifyAttempts is how often Verify asks a probe that fails with a
// transport error or a 5xx: a site just recovered may still be settling.
const verifyAttempts = 3

// verifyBackoff is the wait before Verify's second try, doubled after.
var verifyBackoff = 200 * time.Millisecond

// Verify asks the server at baseURL every probe once and compares each
// answer with the learned one. identical counts the probes answered as
// expected; each other probe gives one line in mismatches (a wrong answer,
// or an error that persisted over verifyAttempts tries). err is set only
// when the probes were not learned or ctx ended.
func (p *ProbeSet) Verify(ctx context.Context, client *http.Client, baseURL string) (identical int, mismatches []string, err error) {
	if !p.Learned() {
		return 0, nil, ErrNotLearned
	}
	c := newOIPClient(baseURL, client)
	for i := range p.requests {
		resp, err := p.askWithRetry(ctx, c, i)
		if ctx.Err() != nil {
			return identical, mismatches, fmt.Errorf("verify probes of model %s: %w", p.model, ctx.Err())
		}
		if err == nil {
			err = compareOutputs(p.want[i], resp.Outputs)
		}
		if err != nil {
			mismatches = append(mismatches, fmt.Sprintf("probe %d: %v", i, err))
			continue
		}
		identical++
	}
	return identical, mismatches, nil
}

func (p *ProbeSet) askWithRetry(ctx context.Context, c *oip.Client, i int) (*oip.InferResponse, error) {
	backoff := verifyBackoff
	for attempt := 1; ; attempt++ {
		resp, err := c.Infer(ctx, p.model, "", &p.requests[i])
		status := oip.StatusCode(err)
		retriable := err != nil && (status == 0 || status >= 500)
		if !retriable || attempt == verifyAttempts || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// Check compares an answer body to probe i with the learned answer: nil
// if the outputs have the same names, datatypes and shapes, integers and
// bools are equal and floats agree within a relative 1e-4 (1e-6 absolute
// near zero). Output order does not matter.
func (p *ProbeSet) Check(i int, body []byte) error {
	if !p.Learned() {
		return ErrNotLearned
	}
	if i < 0 || i >= len(p.want) {
		return fmt.Errorf("no probe %d (have %d)", i, len(p.want))
	}
	var resp oip.InferResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("the answer is not an inference response: %w", err)
	}
	return compareOutputs(p.want[i], resp.Outputs)
}

func newOIPClient(baseURL string, hc *http.Client) *oip.Client {
	c := oip.NewClient(baseURL, hc)
	c.MaxResponseBytes = maxAnswerBytes
	return c
}
