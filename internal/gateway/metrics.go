package gateway

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// unknownModel labels requests for models the gateway does not route, so
// clients cannot mint a series per made-up name.
const unknownModel = "_unknown"

// metrics are a gateway's own collectors, in its own registry so that
// several gateways (and nodes) can live in one process.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	tries         *prometheus.CounterVec
	retriesDenied *prometheus.CounterVec
	hedges        *prometheus.CounterVec
	ejections     *prometheus.CounterVec
	votes         *prometheus.CounterVec
	disagreements *prometheus.CounterVec
	shed          *prometheus.CounterVec
}

// Kinds of tries (the kind label of bulwark_gateway_tries_total).
const (
	tryFirst = "first"
	tryRetry = "retry"
	tryHedge = "hedge"
	tryVote  = "vote"
)

func newMetrics(g *Gateway) *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_gateway_" + name, Help: help}, labels)
	}
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		requests: counter("requests_total", "Inference requests by model and HTTP status code.", "model", "code"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_gateway_request_duration_seconds",
			Help:    "Time from receiving an inference request to writing its answer, all tries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"model"}),
		tries:         counter("tries_total", "Tries sent to replicas, by kind: first, retry, hedge, vote.", "model", "kind"),
		retriesDenied: counter("retries_denied_total", "Retries not sent because the retry budget was spent.", "model"),
		hedges:        counter("hedges_total", "Hedged tries by outcome: won (answered first) or lost.", "model", "outcome"),
		ejections:     counter("ejections_total", "Outlier ejections of a replica.", "model", "replica"),
		votes:         counter("votes_total", "Voted requests by result: unanimous, majority, no_majority.", "model", "result"),
		disagreements: counter("vote_disagreements_total", "Answers of a replica that disagreed with the majority.", "model", "replica"),
		shed:          counter("shed_total", "Requests refused without a try, by reason: pending (429), unavailable (503).", "model", "reason"),
	}
	m.reg.MustRegister(m.requests, m.duration, m.tries, m.retriesDenied, m.hedges, m.ejections,
		m.votes, m.disagreements, m.shed, stateCollector{g}, routingCollector{g},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// modelMetrics are one model's series of the hot path, resolved once:
// looking a label set up in a vector on every request hashes the labels
// and takes a lock.
type modelMetrics struct {
	tries    map[string]prometheus.Counter // by kind: first, retry, hedge, vote
	ok       prometheus.Counter            // requests_total{code="200"}
	duration prometheus.Observer
}

func newModelMetrics(m *metrics, model string) *modelMetrics {
	mm := &modelMetrics{
		tries:    map[string]prometheus.Counter{},
		ok:       m.requests.WithLabelValues(model, "200"),
		duration: m.duration.WithLabelValues(model),
	}
	for _, kind := range []string{tryFirst, tryRetry, tryHedge, tryVote} {
		mm.tries[kind] = m.tries.WithLabelValues(model, kind)
	}
	return mm
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// stateCollector reports bulwark_gateway_replica_state at scrape time from
// the live routing table: always current (states also change by the clock,
// an ejection or an open breaker running out), and no stale series for
// replicas a reload removed.
type stateCollector struct{ g *Gateway }

var stateDesc = prometheus.NewDesc("bulwark_gateway_replica_state",
	"1 for the replica's current state (healthy, unhealthy, ejected, draining, breaker-open), 0 for the others.",
	[]string{"model", "replica", "state"}, nil)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- stateDesc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, m := range c.g.table().models {
		p := m.policy.Load()
		for _, r := range m.replicas() {
			cur := r.state(now, p)
			for _, s := range allStates {
				v := 0.0
				if s == cur {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, m.name, r.addr, s)
			}
		}
	}
}

// routingCollector reports where the routing table stands when a
// controller feeds it: its generation, its age (since the controller last
// confirmed it: it grows while the controller is unreachable), whether
// the controller answers, and the tables applied and refused.
type routingCollector struct{ g *Gateway }

var (
	routingGenerationDesc = prometheus.NewDesc("bulwark_gateway_routing_generation",
		"Generation of the routing table in force, as the controller numbers it (0: none yet).", nil, nil)
	routingAgeDesc = prometheus.NewDesc("bulwark_gateway_routing_age_seconds",
		"Seconds since the controller last confirmed the routing table in force (it answers a poll at least every 30s).", nil, nil)
	routingUpDesc = prometheus.NewDesc("bulwark_gateway_routing_controller_up",
		"1 if the last poll of the controller got an answer, else 0.", nil, nil)
	routingUpdatesDesc = prometheus.NewDesc("bulwark_gateway_routing_updates_total",
		"Routing tables from the controller, by result: applied, or rejected as invalid.", []string{"result"}, nil)
)

func (c routingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- routingGenerationDesc
	ch <- routingAgeDesc
	ch <- routingUpDesc
	ch <- routingUpdatesDesc
}

func (c routingCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.g.follower.Load()
	if f == nil {
		return
	}
	st := f.Status()
	up := 0.0
	if st.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(routingGenerationDesc, prometheus.GaugeValue, float64(st.Generation))
	if st.Confirmed != nil {
		ch <- prometheus.MustNewConstMetric(routingAgeDesc, prometheus.GaugeValue, st.AgeSeconds)
	}
	ch <- prometheus.MustNewConstMetric(routingUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(routingUpdatesDesc, prometheus.CounterValue, float64(st.Updates), "applied")
	ch <- prometheus.MustNewConstMetric(routingUpdatesDesc, prometheus.CounterValue, float64(st.Rejected), "rejected")
}
