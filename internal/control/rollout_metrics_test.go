package control

import (
	"math"
	"strings"
	"testing"
	"time"
)

const nodeMetrics = `# HELP bulwark_node_infer_requests_total Inference requests.
# TYPE bulwark_node_infer_requests_total counter
bulwark_node_infer_requests_total{code="2xx",model="iris",version="2"} 90
bulwark_node_infer_requests_total{code="4xx",model="iris",version="2"} 4
bulwark_node_infer_requests_total{code="5xx",model="iris",version="2"} 6
bulwark_node_infer_requests_total{code="5xx",model="iris",version="1"} 1000
bulwark_node_infer_requests_total{code="2xx",model="other \"quoted\"",version="2"} 7
# TYPE bulwark_node_infer_duration_seconds histogram
bulwark_node_infer_duration_seconds_bucket{model="iris",version="2",le="0.001"} 50
bulwark_node_infer_duration_seconds_bucket{model="iris",version="2",le="0.01"} 90
bulwark_node_infer_duration_seconds_bucket{model="iris",version="2",le="0.1"} 100
bulwark_node_infer_duration_seconds_bucket{model="iris",version="2",le="+Inf"} 100
bulwark_node_infer_duration_seconds_sum{model="iris",version="2"} 0.5
bulwark_node_infer_duration_seconds_count{model="iris",version="2"} 100
go_goroutines 12
`

func TestParseNodeMetrics(t *testing.T) {
	s, err := parseNodeMetrics(strings.NewReader(nodeMetrics), "iris", "2", t0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 100 || s.Errors != 6 || len(s.Buckets) != 4 || !math.IsInf(s.Buckets[3].LE, 1) || s.Buckets[1].Count != 90 {
		t.Fatalf("sample %+v", s)
	}
	if _, err := parseNodeMetrics(strings.NewReader("broken{model=\"x 1\n"), "iris", "2", t0); err == nil {
		t.Fatal("parsed a broken line")
	}
}

func TestQuantile(t *testing.T) {
	bs := []bucket{{0.001, 50}, {0.01, 90}, {0.1, 100}, {math.Inf(1), 100}}
	// The 99th of 100 requests is in the (0.01, 0.1] bucket, 9 of its 10.
	if got := quantile(0.99, bs); math.Abs(got-0.091) > 1e-9 {
		t.Fatalf("p99 = %v", got)
	}
	if got := quantile(0.5, bs); got != 0.001 {
		t.Fatalf("p50 = %v", got)
	}
	if got := quantile(0.99, []bucket{{0.1, 10}, {math.Inf(1), 20}}); got != 0.1 {
		t.Fatalf("p99 in +Inf = %v, want the highest finite bound", got)
	}
	if !math.IsNaN(quantile(0.99, nil)) || !math.IsNaN(quantile(0.99, []bucket{{1, 0}})) {
		t.Fatal("quantile without data")
	}
}

func TestWindowDeltaAndVerdict(t *testing.T) {
	mk := func(sec int, total, errs float64) metricSample {
		return metricSample{At: t0.Add(time.Duration(sec) * time.Second), Total: total, Errors: errs,
			Buckets: []bucket{{0.01, total}, {math.Inf(1), total}}}
	}
	samples := []metricSample{mk(0, 100, 0), mk(10, 200, 0), mk(20, 300, 50)}
	d, ok := windowDelta(samples, t0.Add(20*time.Second), 10*time.Second)
	if !ok || d.Total != 100 || d.Errors != 50 || d.Buckets[0].Count != 100 {
		t.Fatalf("window delta %+v", d)
	}
	// A window longer than the samples counts from the process start.
	if d, _ := windowDelta(samples, t0.Add(20*time.Second), time.Hour); d.Total != 300 {
		t.Fatalf("whole life: %+v", d)
	}
	ro := Rollout{MaxErrorRate: 0.05, MaxP99Latency: Duration(5 * time.Millisecond)}
	if v := healthVerdict(d, ro, time.Minute, 20); !strings.Contains(v, "error rate 50.0% over the last 1m0s (50 of 100 requests failed)") {
		t.Fatalf("verdict %q", v)
	}
	if v := healthVerdict(metricSample{Total: 5, Errors: 5}, ro, time.Minute, 20); v != "" {
		t.Fatalf("a verdict on 5 requests: %q", v)
	}
	slow := metricSample{Total: 100, Buckets: []bucket{{0.001, 10}, {0.1, 100}, {math.Inf(1), 100}}}
	if v := healthVerdict(slow, ro, time.Minute, 20); !strings.Contains(v, "p99 latency") {
		t.Fatalf("slow verdict %q", v)
	}
	ro.MaxP99Latency = 0
	if v := healthVerdict(slow, ro, time.Minute, 20); v != "" {
		t.Fatalf("latency checked with maxP99Latency 0: %q", v)
	}
	sum := addSample(addSample(metricSample{}, mk(0, 10, 1)), mk(0, 30, 2))
	if sum.Total != 40 || sum.Errors != 3 || sum.Buckets[0].Count != 40 {
		t.Fatalf("sum %+v", sum)
	}
}
