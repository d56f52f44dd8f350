package node

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// unknownLabel stands for a model or version the node does not have. It
// cannot be a real name (names start with a letter or digit), and using
// one fixed value keeps clients from creating a series per made-up name.
const unknownLabel = "_unknown"

// Kinds of failed inference requests, the "kind" label of the errors metric.
const (
	errKindBadRequest = "bad_request"
	errKindNotFound   = "not_found"
	errKindNotReady   = "not_ready"
	errKindTooLarge   = "too_large"
	errKindCanceled   = "canceled"
	errKindRuntime    = "runtime"
)

// metrics are a server's own collectors, in its own registry so that many
// servers can live in one process (tests, `bulwark up`).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ready    *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_node_infer_requests_total",
			Help: "Inference requests by model, version and status code class (2xx, 4xx, 5xx).",
		}, []string{"model", "version", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_node_infer_errors_total",
			Help: "Failed inference requests by model, version and kind of failure.",
		}, []string{"model", "version", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_node_infer_duration_seconds",
			Help:    "Time from receiving an inference request to writing its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"model", "version"}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_node_model_ready",
			Help: "1 if the model version is loaded and serving, 0 if it failed to load.",
		}, []string{"model", "version"}),
	}
	m.reg.MustRegister(m.requests, m.errors, m.latency, m.ready,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) setReady(model, version string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	m.ready.WithLabelValues(model, version).Set(v)
}

// versionMetrics caches one version's series, so the request path does not
// hash label values on every call.
type versionMetrics struct {
	m              *metrics
	model, version string
	ok, c4, c5     prometheus.Counter
	latency        prometheus.Observer
}

func (m *metrics) forVersion(model, version string) *versionMetrics {
	return &versionMetrics{
		m: m, model: model, version: version,
		ok:      m.requests.WithLabelValues(model, version, "2xx"),
		c4:      m.requests.WithLabelValues(model, version, "4xx"),
		c5:      m.requests.WithLabelValues(model, version, "5xx"),
		latency: m.latency.WithLabelValues(model, version),
	}
}

// observe records one finished request; kind is empty on success.
func (v *versionMetrics) observe(status int, kind string, start time.Time) {
	switch {
	case status >= 500:
		v.c5.Inc()
	case status >= 400:
		v.c4.Inc()
	default:
		v.ok.Inc()
	}
	if kind != "" {
		v.m.errors.WithLabelValues(v.model, v.version, kind).Inc()
	}
	v.latency.Observe(time.Since(start).Seconds())
}
