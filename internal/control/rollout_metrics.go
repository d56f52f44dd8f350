package control

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A rollout watches the new version's health from its replicas' own
// counters (GET /metrics on each node): the share of 5xx answers among
// inference requests, and the p99 latency from the duration histogram,
// both over the last rollout.observe. 4xx answers are the client's fault
// and do not count against a version.

// The node metrics the rollout engine reads.
const (
	metricRequests = "bulwark_node_infer_requests_total"
	metricDuration = "bulwark_node_infer_duration_seconds_bucket"
)

// DefaultMinRequests is how many requests a verdict on the error rate or
// latency needs: below it, one unlucky request would decide a rollout.
const DefaultMinRequests = 20

// metricSample is one scrape of one replica, for one model version.
type metricSample struct {
	At      time.Time
	Total   float64 // inference requests answered
	Errors  float64 // of them, 5xx
	Buckets []bucket
}

// bucket is one cumulative histogram bucket: requests at most LE seconds.
type bucket struct {
	LE    float64
	Count float64
}

// parseNodeMetrics reads the Prometheus text format and keeps the series
// of one model version.
func parseNodeMetrics(r io.Reader, model, version string, at time.Time) (metricSample, error) {
	s := metricSample{At: at}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSampleLine(line)
		if err != nil {
			return s, err
		}
		if (name != metricRequests && name != metricDuration) || labels["model"] != model || labels["version"] != version {
			continue
		}
		if name == metricRequests {
			s.Total += value
			if strings.HasPrefix(labels["code"], "5") {
				s.Errors += value
			}
			continue
		}
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			return s, fmt.Errorf("metrics: bucket le %q: %w", labels["le"], err)
		}
		s.Buckets = append(s.Buckets, bucket{LE: le, Count: value})
	}
	sort.Slice(s.Buckets, func(i, j int) bool { return s.Buckets[i].LE < s.Buckets[j].LE })
	return s, sc.Err()
}

// parseSampleLine splits `name{k="v",...} value [timestamp]`.
func parseSampleLine(line string) (string, map[string]string, float64, error) {
	bad := func(why string) (string, map[string]string, float64, error) {
		return "", nil, 0, fmt.Errorf("metrics: %s in %q", why, line)
	}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return bad("no value")
	}
	name, rest := line[:i], line[i:]
	labels := map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if rest == "" {
				return bad("unterminated labels")
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return bad("malformed label")
			}
			key := rest[:eq]
			var val strings.Builder
			j := eq + 2
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					if rest[j] == 'n' {
						val.WriteByte('\n')
						continue
					}
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return bad("unterminated label value")
			}
			labels[key] = val.String()
			rest = rest[j+1:]
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return bad("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return bad("bad value")
	}
	return name, labels, v, nil
}

// windowDelta is what one replica served in the window (now-window, now]:
// its latest sample minus the last sample taken before the window, or
// minus nothing if it started within the window (counters start at 0).
func windowDelta(samples []metricSample, now time.Time, window time.Duration) (metricSample, bool) {
	if len(samples) == 0 {
		return metricSample{}, false
	}
	last := samples[len(samples)-1]
	var base metricSample
	for _, s := range samples {
		if s.At.After(now.Add(-window)) {
			break
		}
		base = s
	}
	d := metricSample{At: last.At, Total: last.Total - base.Total, Errors: last.Errors - base.Errors}
	for i, b := range last.Buckets {
		c := b.Count
		if i < len(base.Buckets) && base.Buckets[i].LE == b.LE {
			c -= base.Buckets[i].Count
		}
		d.Buckets = append(d.Buckets, bucket{LE: b.LE, Count: c})
	}
	return d, true
}

// addSample sums what several replicas served; their buckets have the same
// bounds (the same binary).
func addSample(a, b metricSample) metricSample {
	a.Total += b.Total
	a.Errors += b.Errors
	if len(a.Buckets) == 0 {
		a.Buckets = append([]bucket(nil), b.Buckets...)
		return a
	}
	for i := range a.Buckets {
		if i < len(b.Buckets) && b.Buckets[i].LE == a.Buckets[i].LE {
			a.Buckets[i].Count += b.Buckets[i].Count
		}
	}
	return a
}

// quantile is the q-quantile of a cumulative histogram, interpolating
// linearly inside the bucket as Prometheus' histogram_quantile does. An
// answer in the +Inf bucket is the highest finite bound; NaN without data.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.LE, 1) {
				return prevLE
			}
			if b.Count == prevCount {
				return b.LE
			}
			return prevLE + (b.LE-prevLE)*(rank-prevCount)/(b.Count-prevCount)
		}
		prevLE, prevCount = b.LE, b.Count
	}
	return prevLE
}

// healthVerdict judges a version's window of requests against the rollout
// limits; it says why the version fails, or "" if it passes or the window
// holds too few requests to tell.
func healthVerdict(d metricSample, ro Rollout, window time.Duration, minRequests int) string {
	if d.Total < float64(minRequests) || d.Total <= 0 {
		return ""
	}
	if rate := d.Errors / d.Total; rate > ro.MaxErrorRate {
		return fmt.Sprintf("error rate %.1f%% over the last %s (%.0f of %.0f requests failed), above maxErrorRate %.1f%%",
			100*rate, window, d.Errors, d.Total, 100*ro.MaxErrorRate)
	}
	if ro.MaxP99Latency > 0 {
		p99 := quantile(0.99, d.Buckets)
		if !math.IsNaN(p99) && p99 > time.Duration(ro.MaxP99Latency).Seconds() {
			return fmt.Sprintf("p99 latency %s over the last %s (%.0f requests), above maxP99Latency %s",
				time.Duration(p99*float64(time.Second)).Round(time.Microsecond), window, d.Total, ro.MaxP99Latency)
		}
	}
	return ""
}
