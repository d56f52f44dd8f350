package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

// TimeoutHeader lets a client ask for a shorter deadline than the model's
// configured timeout (a longer one is ignored), as a Go duration: "250ms".
const TimeoutHeader = "X-Bulwark-Timeout"

// Response headers the gateway adds: which replica answered, and how many
// tries the request took.
const (
	ReplicaHeader = "X-Bulwark-Replica"
	TriesHeader   = "X-Bulwark-Tries"
)

// routes builds the mux: the node's OIP routes, answered the node's way
// (JSON errors, JSON 405s), plus /metrics and /admin/.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+", use "+method)
		})
	}
	route("GET", "/v2/health/live", g.handleLive)
	route("GET", "/v2/health/ready", g.handleReady)
	route("GET", "/v2", g.handleServerMetadata)
	route("GET", "/v2/models/{model}", g.handleModelGet)
	route("GET", "/v2/models/{model}/versions/{version}", g.handleModelGet)
	route("GET", "/v2/models/{model}/ready", g.handleModelGet)
	route("GET", "/v2/models/{model}/versions/{version}/ready", g.handleModelGet)
	route("POST", "/v2/models/{model}/infer", g.handleInfer)
	route("POST", "/v2/models/{model}/versions/{version}/infer", g.handleInfer)
	route("GET", "/metrics", g.metrics.handler().ServeHTTP)
	mux.Handle("/admin/", g.adminHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	writeReply(w, reply{status: status, contentType: "application/json", body: b})
}

// writeError answers with the protocol's {"error": msg} body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeReply(w, errorReply(status, msg))
}

// Header values shared by every answer that carries them, so that writing
// the usual headers allocates nothing (net/http only reads them).
var (
	jsonContentType = []string{"application/json"}
	triesValues     = [...][]string{{"0"}, {"1"}, {"2"}, {"3"}, {"4"}, {"5"}}
)

func writeReply(w http.ResponseWriter, rep reply) {
	h := w.Header()
	if rep.contentType == "application/json" {
		h["Content-Type"] = jsonContentType
	} else if rep.contentType != "" {
		h.Set("Content-Type", rep.contentType)
	}
	if rep.retryAfter != "" {
		h.Set("Retry-After", rep.retryAfter)
	}
	if rep.replicaHdr != nil {
		h[ReplicaHeader] = rep.replicaHdr
	} else if rep.replica != "" {
		h.Set(ReplicaHeader, rep.replica)
	}
	if rep.tries > 0 && rep.tries < len(triesValues) {
		h[TriesHeader] = triesValues[rep.tries]
	} else if rep.tries > 0 {
		h.Set(TriesHeader, strconv.Itoa(rep.tries))
	}
	h["Content-Length"] = []string{strconv.Itoa(len(rep.body))}
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

// errorMessage is the message of an {"error"} body, or the start of any
// other body.
func errorMessage(body []byte) string {
	var e oip.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := string(bytes.TrimSpace(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (g *Gateway) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (g *Gateway) handleReady(w http.ResponseWriter, r *http.Request) {
	if msg := g.notReady(); msg != "" {
		writeError(w, http.StatusServiceUnavailable, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
}

// handleServerMetadata proxies GET /v2 to a replica of the first model
// that has one available: the gateway fronts those servers, and their
// name and extensions are what a client can use through it.
func (g *Gateway) handleServerMetadata(w http.ResponseWriter, r *http.Request) {
	tab := g.table()
	now := time.Now()
	for _, name := range tab.names {
		if m := tab.models[name]; m.available(now) > 0 {
			writeReply(w, g.forwardGet(r, m))
			return
		}
	}
	rep := errorReply(http.StatusServiceUnavailable, "no replica of any model is available")
	rep.retryAfter = "1"
	writeReply(w, rep)
}

// handleModelGet proxies model metadata and readiness to a replica, with
// retries (no hedging: these are cheap and rare).
func (g *Gateway) handleModelGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	m := g.table().models[name]
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", name))
		return
	}
	writeReply(w, g.forwardGet(r, m))
}

func (g *Gateway) forwardGet(r *http.Request, m *model) reply {
	p := m.policy.Load()
	timeout, err := requestTimeout(r, p.Timeout)
	if err != nil {
		return errorReply(http.StatusBadRequest, err.Error())
	}
	m.retries.deposit()
	req := &request{method: http.MethodGet, path: r.URL.EscapedPath(), query: r.URL.RawQuery}
	c := newCall(g, m, p, r.Context(), timeout, req, p.Retry.Attempts)
	c.version = r.PathValue("version")
	return c.proxy()
}

func (g *Gateway) handleInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("model")
	m := g.table().models[name]
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", name))
		g.metrics.requests.WithLabelValues(unknownModel, "404").Inc()
		return
	}
	rep := g.infer(w, r, m, m.policy.Load())
	writeReply(w, rep)
	if rep.status == http.StatusOK {
		m.mx.ok.Inc()
	} else {
		g.metrics.requests.WithLabelValues(m.name, strconv.Itoa(rep.status)).Inc()
	}
	m.mx.duration.Observe(time.Since(start).Seconds())
	if rep.shed != "" {
		g.metrics.shed.WithLabelValues(m.name, rep.shed).Inc()
	}
}

func (g *Gateway) infer(w http.ResponseWriter, r *http.Request, m *model, p *Policy) reply {
	// Shed before reading the body: an overloaded gateway must not spend
	// memory on requests it will refuse.
	if m.pending.Add(1) > int64(p.MaxPending) {
		m.pending.Add(-1)
		rep := errorReply(http.StatusTooManyRequests, fmt.Sprintf("model %s has %d requests pending, the most it takes: try again later", m.name, p.MaxPending))
		rep.retryAfter, rep.shed = "1", "pending"
		return rep
	}
	defer m.pending.Add(-1)
	timeout, err := requestTimeout(r, p.Timeout)
	if err != nil {
		return errorReply(http.StatusBadRequest, err.Error())
	}
	body, rep, ok := readBody(w, r, p.MaxBodyBytes)
	if !ok {
		return rep
	}
	m.retries.deposit()
	m.hedges.deposit()
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	req := &request{method: http.MethodPost, path: r.URL.EscapedPath(), query: r.URL.RawQuery, contentType: ct, body: body}
	c := newCall(g, m, p, r.Context(), timeout, req, max(p.Retry.Attempts, p.Vote.Replicas))
	c.version = r.PathValue("version")
	if p.Vote.Enabled {
		return c.vote()
	}
	c.hedging = true
	return c.proxy()
}

func requestTimeout(r *http.Request, def time.Duration) (time.Duration, error) {
	h := r.Header.Get(TimeoutHeader)
	if h == "" {
		return def, nil
	}
	d, err := time.ParseDuration(h)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid %s header %q: want a positive duration such as 250ms", TimeoutHeader, h)
	}
	return min(d, def), nil
}

// readBody buffers the request body once, so every try can replay it,
// under the node's limit and with the node's 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, reply, bool) {
	tooLarge := func() reply {
		return errorReply(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes", limit))
	}
	if r.ContentLength > limit {
		return nil, tooLarge(), false
	}
	if n := r.ContentLength; n >= 0 && n <= 1<<20 {
		// The usual case: the length is known and small (the server stops
		// the body at the length): read exactly that, in one allocation.
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, errorReply(http.StatusBadRequest, "read request body: "+err.Error()), false
		}
		return body, reply{}, true
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, 1<<20)) + 1)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(), false
		}
		return nil, errorReply(http.StatusBadRequest, "read request body: "+err.Error()), false
	}
	return buf.Bytes(), reply{}, true
}
