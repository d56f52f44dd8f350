package node

// Chaos mode: opt-in fault injection for tests and drills. A node started
// with Config.Chaos mounts /admin/chaos (behind the admin bearer token);
// faults set there act on inference requests only. Health endpoints keep
// answering 200, so a slow, failing, hung or lying replica still looks
// healthy to a health checker: exactly the failures the gateway must catch
// with passive ejection, retries, hedging and voting. Only "exit", which
// ends the process, is visible to health checks.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-ml/bulwark/internal/bearer"
	"github.com/bulwark-ml/bulwark/internal/oip"
)

// Fault names: the JSON keys of ChaosSettings and the "fault" label of
// bulwark_node_chaos_injected_total.
const (
	faultLatency = "latency"
	faultError   = "error"
	faultHang    = "hang"
	faultWrong   = "wrong"
	faultExit    = "exit"
)

// errKindChaos is the errors metric's kind for an injected error.
const errKindChaos = "chaos"

const (
	maxChaosBody = 64 << 10
	maxChaosMS   = 3_600_000 // one hour: bounds every configured or sampled delay
)

// ChaosSettings is the whole fault setting of a node in chaos mode: the
// body of PUT /admin/chaos and the answer of GET. A nil fault is off.
//
// Decoded from JSON, a fault object without "rate" fires on every request
// (rate 1), and the other omitted fields take the defaults documented on
// each type. Built in Go, zero values mean what they say (rate 0 never
// fires), except the zero strings and status, which take the defaults.
type ChaosSettings struct {
	// Models restricts the faults to these model names; empty means all.
	Models  []string      `json:"models,omitempty"`
	Latency *LatencyFault `json:"latency,omitempty"`
	Error   *ErrorFault   `json:"error,omitempty"`
	Hang    *HangFault    `json:"hang,omitempty"`
	Wrong   *WrongFault   `json:"wrong,omitempty"`
	Exit    *ExitFault    `json:"exit,omitempty"`
}

// LatencyFault delays a share of requests before inference. Distribution
// is "fixed" (MS, the default), "uniform" (in [MS, MaxMS]), "exponential"
// (mean MS) or "pareto" (scale MS, Shape > 0). MaxMS, when set, caps the
// exponential and pareto samples. The delay ends early if the client goes
// away.
type LatencyFault struct {
	Rate         float64 `json:"rate"`
	Distribution string  `json:"distribution"`
	MS           float64 `json:"ms"`
	MaxMS        float64 `json:"max_ms,omitempty"`
	Shape        float64 `json:"shape,omitempty"`
}

// ErrorFault answers a share of requests with Status (default 500) and
// {"error": Message} instead of running the model.
type ErrorFault struct {
	Rate    float64 `json:"rate"`
	Status  int     `json:"status"`
	Message string  `json:"message"`
}

// HangFault never answers a share of requests: they wait until the client
// gives up, the faults change, or the node shuts down (then they run).
type HangFault struct {
	Rate float64 `json:"rate"`
}

// WrongFault runs the model and corrupts a share of answers: "perturb"
// (the default) adds Delta to every float (default 1 from JSON), 1 to
// every integer and flips booleans; "zero" sets every element to zero;
// "shuffle" reverses the order of each output's elements.
type WrongFault struct {
	Rate  float64 `json:"rate"`
	Mode  string  `json:"mode"`
	Delta float64 `json:"delta"`
}

// ExitFault ends the process with Code (default 1 from JSON) when
// AfterRequests further inference requests have arrived; the last one is
// not answered. AfterRequests 0 exits right after answering the PUT.
type ExitFault struct {
	AfterRequests int64 `json:"after_requests"`
	Code          int   `json:"code"`
}

// JSON decoding of the faults: strict (unknown fields are errors) and with
// the defaults above.

// UnmarshalJSON decodes strictly and fills the defaults.
func (f *LatencyFault) UnmarshalJSON(b []byte) error {
	type plain LatencyFault
	v := plain{Rate: 1}
	err := decodeFault(faultLatency, b, &v)
	*f = LatencyFault(v)
	return err
}

// UnmarshalJSON decodes strictly and fills the defaults.
func (f *ErrorFault) UnmarshalJSON(b []byte) error {
	type plain ErrorFault
	v := plain{Rate: 1}
	err := decodeFault(faultError, b, &v)
	*f = ErrorFault(v)
	return err
}

// UnmarshalJSON decodes strictly and fills the defaults.
func (f *HangFault) UnmarshalJSON(b []byte) error {
	type plain HangFault
	v := plain{Rate: 1}
	err := decodeFault(faultHang, b, &v)
	*f = HangFault(v)
	return err
}

// UnmarshalJSON decodes strictly and fills the defaults.
func (f *WrongFault) UnmarshalJSON(b []byte) error {
	type plain WrongFault
	v := plain{Rate: 1, Delta: 1}
	err := decodeFault(faultWrong, b, &v)
	*f = WrongFault(v)
	return err
}

// UnmarshalJSON decodes strictly and fills the defaults.
func (f *ExitFault) UnmarshalJSON(b []byte) error {
	type plain ExitFault
	v := plain{Code: 1}
	err := decodeFault(faultExit, b, &v)
	*f = ExitFault(v)
	return err
}

func decodeFault(name string, b []byte, v any) error {
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%s must be a JSON object", name)
	}
	return strictUnmarshal(name+".", b, v)
}

// strictUnmarshal decodes exactly one JSON value with no unknown fields.
// Errors name the field with prefix ("latency.") in front, and no Go type.
func strictUnmarshal(prefix string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return fmt.Errorf("%s%s: a JSON %s is not a valid value", prefix, te.Field, te.Value)
		case errors.As(err, &se):
			return fmt.Errorf("malformed JSON: %v", se)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("malformed JSON: unexpected end of input")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.TrimPrefix(err.Error(), "json: unknown field ")
			if prefix == "" {
				return fmt.Errorf("unknown field %s", field)
			}
			return fmt.Errorf("unknown field %s in %s", field, strings.TrimSuffix(prefix, "."))
		}
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// parseChaosSettings decodes and validates a PUT body.
func parseChaosSettings(b []byte) (ChaosSettings, error) {
	var set ChaosSettings
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return set, errors.New("the body must be a JSON object (use DELETE to clear the faults)")
	}
	if err := strictUnmarshal("", b, &set); err != nil {
		return set, err
	}
	return set, set.normalize()
}

// normalize fills the defaults and checks every value.
func (s *ChaosSettings) normalize() error {
	for i, m := range s.Models {
		if m == "" {
			return fmt.Errorf("models[%d] is empty", i)
		}
	}
	if l := s.Latency; l != nil {
		if err := checkRate(faultLatency, l.Rate); err != nil {
			return err
		}
		if l.Distribution == "" {
			l.Distribution = "fixed"
		}
		switch l.Distribution {
		case "fixed", "uniform", "exponential", "pareto":
		default:
			return fmt.Errorf("latency.distribution must be fixed, uniform, exponential or pareto, not %q", l.Distribution)
		}
		for _, d := range []struct {
			name string
			v    float64
		}{{"ms", l.MS}, {"max_ms", l.MaxMS}} {
			if !(d.v >= 0 && d.v <= maxChaosMS) {
				return fmt.Errorf("latency.%s must be in [0, %d], got %v", d.name, maxChaosMS, d.v)
			}
		}
		switch {
		case l.Distribution == "uniform" && l.MaxMS < l.MS:
			return fmt.Errorf("latency.max_ms (%v) must be at least latency.ms (%v) for uniform", l.MaxMS, l.MS)
		case l.MaxMS != 0 && l.MaxMS < l.MS:
			return fmt.Errorf("latency.max_ms (%v), the cap, must be at least latency.ms (%v)", l.MaxMS, l.MS)
		case !(l.Shape >= 0 && l.Shape <= 1e6):
			return fmt.Errorf("latency.shape must be in [0, 1e6], got %v", l.Shape)
		case l.Distribution == "pareto" && l.Shape == 0:
			return errors.New("latency.shape must be > 0 for pareto (e.g. 1.5)")
		}
	}
	if e := s.Error; e != nil {
		if err := checkRate(faultError, e.Rate); err != nil {
			return err
		}
		if e.Status == 0 {
			e.Status = http.StatusInternalServerError
		}
		if e.Status < 400 || e.Status > 599 {
			return fmt.Errorf("error.status must be in [400, 599], got %d", e.Status)
		}
		if e.Message == "" {
			e.Message = "chaos: injected error"
		}
	}
	if h := s.Hang; h != nil {
		if err := checkRate(faultHang, h.Rate); err != nil {
			return err
		}
	}
	if w := s.Wrong; w != nil {
		if err := checkRate(faultWrong, w.Rate); err != nil {
			return err
		}
		if w.Mode == "" {
			w.Mode = "perturb"
		}
		switch w.Mode {
		case "perturb", "shuffle", "zero":
		default:
			return fmt.Errorf("wrong.mode must be perturb, shuffle or zero, not %q", w.Mode)
		}
		if math.IsNaN(w.Delta) || math.IsInf(w.Delta, 0) {
			return fmt.Errorf("wrong.delta must be a finite number, got %v", w.Delta)
		}
	}
	if x := s.Exit; x != nil {
		if x.AfterRequests < 0 {
			return fmt.Errorf("exit.after_requests must be >= 0, got %d", x.AfterRequests)
		}
		if x.Code < 0 || x.Code > 255 {
			return fmt.Errorf("exit.code must be in [0, 255], got %d", x.Code)
		}
	}
	return nil
}

func checkRate(fault string, r float64) error {
	if !(r >= 0 && r <= 1) {
		return fmt.Errorf("%s.rate must be in [0, 1], got %v", fault, r)
	}
	return nil
}

// chaosRand is the randomness the faults draw from: math/rand/v2's global
// functions in a server (safe for concurrent use), a seeded *rand.Rand in
// tests of the distributions.
type chaosRand interface {
	Float64() float64
	ExpFloat64() float64
}

type globalRand struct{}

func (globalRand) Float64() float64    { return rand.Float64() }
func (globalRand) ExpFloat64() float64 { return rand.ExpFloat64() }

// sample draws one delay.
func (f *LatencyFault) sample(rng chaosRand) time.Duration {
	ms := f.MS
	switch f.Distribution {
	case "uniform":
		ms += rng.Float64() * (f.MaxMS - f.MS)
	case "exponential":
		ms *= rng.ExpFloat64()
	case "pareto":
		ms /= math.Pow(1-rng.Float64(), 1/f.Shape) // 1-U is in (0, 1]
	}
	if f.MaxMS > 0 && ms > f.MaxMS {
		ms = f.MaxMS
	}
	ms = min(ms, maxChaosMS) // also turns +Inf into a duration
	return time.Duration(ms * float64(time.Millisecond))
}

// corrupt replaces every output with a corrupted copy: the runtime's
// tensor may be shared (a constant output), so it is never changed.
func (f *WrongFault) corrupt(outs []oip.Output) {
	for i := range outs {
		t := outs[i].Tensor.Clone()
		switch f.Mode {
		case "zero":
			clear(t.F32)
			clear(t.F64)
			clear(t.I32)
			clear(t.I64)
			clear(t.Bool)
		case "shuffle":
			slices.Reverse(t.F32)
			slices.Reverse(t.F64)
			slices.Reverse(t.I32)
			slices.Reverse(t.I64)
			slices.Reverse(t.Bool)
		default: // perturb
			for j := range t.F32 {
				t.F32[j] += float32(f.Delta)
			}
			for j := range t.F64 {
				t.F64[j] += f.Delta
			}
			for j := range t.I32 {
				t.I32[j]++
			}
			for j := range t.I64 {
				t.I64[j]++
			}
			for j := range t.Bool {
				t.Bool[j] = !t.Bool[j]
			}
		}
		outs[i].Tensor = t
	}
}

// chaos is a node's chaos mode; Server.chaos is nil when it is off.
type chaos struct {
	log      *slog.Logger
	token    string
	exit     func(code int)
	rng      chaosRand
	injected *prometheus.CounterVec

	mu       sync.Mutex // serializes changes of cur
	cur      atomic.Pointer[chaosState]
	stopOnce sync.Once
	stopping chan struct{} // closed when the server shuts down
}

// chaosState is one setting, immutable once stored except for the exit
// countdown.
type chaosState struct {
	set       ChaosSettings
	models    map[string]bool // nil: every model
	inert     bool            // no fault at all
	changed   chan struct{}   // closed when the setting is replaced
	remaining atomic.Int64    // inference requests until exit
}

func newChaosState(set ChaosSettings) *chaosState {
	st := &chaosState{
		set:     set,
		inert:   set.Latency == nil && set.Error == nil && set.Hang == nil && set.Wrong == nil && set.Exit == nil,
		changed: make(chan struct{}),
	}
	if len(set.Models) > 0 {
		st.models = make(map[string]bool, len(set.Models))
		for _, m := range set.Models {
			st.models[m] = true
		}
	}
	if set.Exit != nil {
		st.remaining.Store(set.Exit.AfterRequests)
	}
	return st
}

func newChaos(cfg *Config, log *slog.Logger, m *metrics) *chaos {
	c := &chaos{
		log: log, token: cfg.AdminToken, exit: cfg.ChaosExit, rng: globalRand{},
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_node_chaos_injected_total",
			Help: "Faults injected by chaos mode, by fault (latency, error, hang, wrong, exit).",
		}, []string{"fault"}),
		stopping: make(chan struct{}),
	}
	for _, f := range []string{faultLatency, faultError, faultHang, faultWrong, faultExit} {
		c.injected.WithLabelValues(f)
	}
	m.reg.MustRegister(c.injected)
	c.cur.Store(newChaosState(ChaosSettings{}))
	return c
}

// mount registers the admin endpoints, all behind the bearer token.
func (c *chaos) mount(mux *http.ServeMux) {
	guard := func(h http.HandlerFunc) http.Handler { return bearer.Require(c.token, h) }
	mux.Handle("GET /admin/chaos", guard(c.handleGet))
	mux.Handle("PUT /admin/chaos", guard(c.handlePut))
	mux.Handle("DELETE /admin/chaos", guard(c.handleDelete))
	mux.Handle("/admin/chaos", guard(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on /admin/chaos, use GET, PUT or DELETE")
	}))
}

// stop releases hung and delayed requests: the server is shutting down
// and lets in-flight requests finish.
func (c *chaos) stop() { c.stopOnce.Do(func() { close(c.stopping) }) }

// replace stores a new setting and releases requests hung by the old one.
func (c *chaos) replace(st *chaosState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.cur.Swap(st).changed)
}

func (c *chaos) handleGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.cur.Load().set)
}

func (c *chaos) handleDelete(w http.ResponseWriter, r *http.Request) {
	c.replace(newChaosState(ChaosSettings{}))
	c.log.Warn("chaos faults cleared", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, ChaosSettings{})
}

func (c *chaos) handlePut(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxChaosBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("chaos settings are larger than %d bytes", maxChaosBody))
			return
		}
		writeError(w, http.StatusBadRequest, "read chaos settings: "+err.Error())
		return
	}
	set, err := parseChaosSettings(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid chaos settings: "+err.Error())
		return
	}
	c.replace(newChaosState(set))
	what, _ := json.Marshal(set)
	c.log.Warn("chaos settings changed", "remote", r.RemoteAddr, "settings", string(what))
	writeJSON(w, http.StatusOK, set)
	if set.Exit != nil && set.Exit.AfterRequests == 0 {
		// The answer must reach the client before the process ends.
		http.NewResponseController(w).Flush()
		c.doExit(set.Exit.Code)
	}
}

func (c *chaos) doExit(code int) {
	c.injected.WithLabelValues(faultExit).Inc()
	c.log.Warn("chaos: exiting the process", "code", code)
	c.exit(code)
}

func (c *chaos) hit(rate float64) bool { return rate > 0 && c.rng.Float64() < rate }

// intercept applies the faults to one inference request of a resolved
// version, in order: exit countdown, hang, latency, error. A non-nil
// inferError is the answer (an injected error, or the client went away
// while hung or delayed); otherwise a non-nil corrupt is to be applied to
// the outputs before they are encoded.
func (c *chaos) intercept(r *http.Request, mv *modelVersion) (corrupt func([]oip.Output), ierr *inferError) {
	st := c.cur.Load()
	if st.inert || (st.models != nil && !st.models[mv.name]) {
		return nil, nil
	}
	set := &st.set
	if x := set.Exit; x != nil && st.remaining.Add(-1) == 0 {
		c.doExit(x.Code)
	}
	ctx := r.Context()
	if h := set.Hang; h != nil && c.hit(h.Rate) {
		c.injected.WithLabelValues(faultHang).Inc()
		select {
		case <-ctx.Done():
			return nil, runtimeError(ctx, ctx.Err())
		case <-st.changed: // released: serve normally
			return nil, nil
		case <-c.stopping:
			return nil, nil
		}
	}
	if l := set.Latency; l != nil && c.hit(l.Rate) {
		c.injected.WithLabelValues(faultLatency).Inc()
		t := time.NewTimer(l.sample(c.rng))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, runtimeError(ctx, ctx.Err())
		case <-t.C:
		case <-st.changed: // released: serve normally
			return nil, nil
		case <-c.stopping:
		}
	}
	if e := set.Error; e != nil && c.hit(e.Rate) {
		c.injected.WithLabelValues(faultError).Inc()
		return nil, &inferError{e.Status, errKindChaos, e.Message}
	}
	if wf := set.Wrong; wf != nil && c.hit(wf.Rate) {
		return func(outs []oip.Output) {
			c.injected.WithLabelValues(faultWrong).Inc()
			wf.corrupt(outs)
		}, nil
	}
	return nil, nil
}
