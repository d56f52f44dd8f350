// Command oipload is a vegeta-based load tool for OIP servers and the
// proxies in front of them, built for side-by-side comparisons.
//
//	oipload bare -listen 127.0.0.1:8090
//	oipload attack -name node=http://127.0.0.1:8000/v2/models/iris/infer \
//	               -name bare=http://127.0.0.1:8090/v2/models/iris/infer \
//	               -body request.json -concurrency 16 -duration 10s -runs 5
//	oipload attack ... -rate 1000 -format table
//	oipload record -url http://127.0.0.1:8000/v2/models/iris/infer -body request.json \
//	               -rate 1000 -duration 30s -at '10s=kill -STOP 1234' -out results.csv
//	oipload report failover.jsonl
//
// bare is a reference handler: it decodes the same OIP JSON with
// encoding/json and returns a fixed answer, the ceiling of what any Go OIP
// server can do on this machine.
//
// attack alternates the targets run by run so that machine noise hits them
// alike, and prints medians, throughput ratios to the first target and the
// p50 latency each adds over it. Without -rate it is a closed loop
// (-concurrency workers, each sending its next request when the last is
// answered); with -rate it is an open loop at that many requests per
// second, which measures latency without queueing in the load generator.
//
// record runs one open-loop attack at a fixed rate, keeps every request's
// result (-out writes them as CSV), runs shell commands at given offsets
// (-at, to kill or pause a replica mid-run), can count a Prometheus metric
// on the backends before and after (-count) to report the extra requests a
// proxy sent, and prints a one-line JSON summary with exact latency
// percentiles and a per-second timeline. report turns such lines into a
// table.
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: oipload bare|attack|record|report [flags]")
	}
	switch os.Args[1] {
	case "bare":
		bare(os.Args[2:])
	case "attack":
		attack(os.Args[2:])
	case "record":
		record(os.Args[2:])
	case "report":
		report(os.Args[2:])
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

// bareRequest mirrors the OIP request enough to decode every field.
type bareRequest struct {
	ID     string `json:"id"`
	Inputs []struct {
		Name     string          `json:"name"`
		Shape    []int           `json:"shape"`
		Datatype string          `json:"datatype"`
		Data     json.RawMessage `json:"data"`
	} `json:"inputs"`
}

func bare(args []string) {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "address")
	fs.Parse(args)
	answer := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}`)
	http.HandleFunc("POST /v2/models/{m}/infer", func(w http.ResponseWriter, r *http.Request) {
		var req bareRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		var data []float32
		for _, in := range req.Inputs {
			if err := json.Unmarshal(flattenJSON(in.Data), &data); err != nil {
				http.Error(w, `{"error":"bad data"}`, http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

// flattenJSON turns a nested numeric JSON array (shape [8,4] sent as
// [[...],...], as numpy's tolist() gives it) into a flat one by dropping
// the inner brackets, so that encoding/json can decode it into []float32.
func flattenJSON(data []byte) []byte {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[[")) {
		return data
	}
	out := make([]byte, 0, len(data)+2)
	out = append(out, '[')
	for _, c := range data {
		if c != '[' && c != ']' {
			out = append(out, c)
		}
	}
	return append(out, ']')
}

type multiFlag []string

func (t *multiFlag) String() string     { return strings.Join(*t, ",") }
func (t *multiFlag) Set(v string) error { *t = append(*t, v); return nil }

// runResult is one run against one target. Latencies are in milliseconds,
// exact (from every request's latency, not a sketch).
type runResult struct {
	Throughput float64 `json:"throughput_rps"` // successful requests per second
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Max        float64 `json:"max_ms"`
	Success    float64 `json:"success_ratio"`
	Requests   uint64  `json:"requests"`
	Failed     uint64  `json:"failed"`
}

func attack(args []string) {
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	var names multiFlag
	fs.Var(&names, "name", "label=url (repeatable; ratios are to the first)")
	bodyFile := fs.String("body", "", "request body file")
	conc := fs.Uint64("concurrency", 16, "workers (closed loop), or initial workers (with -rate)")
	rate := fs.Int("rate", 0, "requests per second, open loop; 0 = closed loop with -concurrency workers")
	dur := fs.Duration("duration", 10*time.Second, "duration of each run")
	runs := fs.Int("runs", 5, "runs per target")
	format := fs.String("format", "json", "json or table (Markdown)")
	title := fs.String("title", "", "heading printed above the table")
	fs.Parse(args)
	if len(names) == 0 {
		log.Fatal("attack: at least one -name label=url")
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	results := map[string][]runResult{}
	var order []string
	for r := 0; r < *runs; r++ {
		for _, nv := range names {
			label, url, ok := strings.Cut(nv, "=")
			if !ok {
				log.Fatalf("attack: -name %q is not label=url", nv)
			}
			if r == 0 {
				order = append(order, label)
			}
			res := run(url, body, *conc, *rate, *dur)
			fmt.Fprintf(os.Stderr, "run %d %-8s %8.0f req/s p50 %.3f ms p99 %.3f ms max %.1f ms failed %d/%d\n",
				r+1, label, res.Throughput, res.P50, res.P99, res.Max, res.Failed, res.Requests)
			results[label] = append(results[label], res)
		}
	}
	medians := map[string]runResult{}
	for _, label := range order {
		medians[label] = median(results[label])
	}
	base := order[0]
	// pairwise: the median over runs of target/base in the same round.
	pairwise := map[string]float64{}
	addedP50 := map[string]float64{} // µs, median over runs of the per-round difference
	for _, label := range order[1:] {
		var ratios, added []float64
		for i := range results[label] {
			ratios = append(ratios, results[label][i].Throughput/results[base][i].Throughput)
			added = append(added, (results[label][i].P50-results[base][i].P50)*1000)
		}
		pairwise[label] = medianOf(ratios)
		addedP50[label] = medianOf(added)
	}
	if *format == "table" {
		if *title != "" {
			fmt.Printf("%s\n\n", *title)
		}
		mode := "closed loop, concurrency " + strconv.FormatUint(*conc, 10)
		if *rate > 0 {
			mode = fmt.Sprintf("open loop, %d req/s", *rate)
		}
		fmt.Printf("%s, %d runs of %v per target, alternating; medians over runs\n\n", mode, *runs, *dur)
		fmt.Printf("| target | req/s | ratio to %s | pairwise ratio | p50 ms | added p50 µs | p99 ms | p99.9 ms | max ms | failed |\n", base)
		fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, label := range order {
			m := medians[label]
			ratio, pw, add := "1", "1", "0"
			if label != base {
				ratio = fmt.Sprintf("%.2f", m.Throughput/medians[base].Throughput)
				pw = fmt.Sprintf("%.2f", pairwise[label])
				add = fmt.Sprintf("%+.0f", addedP50[label])
			}
			var failed uint64
			for _, r := range results[label] {
				failed += r.Failed
			}
			fmt.Printf("| %s | %.0f | %s | %s | %.3f | %s | %.3f | %.3f | %.1f | %d |\n",
				label, m.Throughput, ratio, pw, m.P50, add, m.P99, m.P999, m.Max, failed)
		}
		fmt.Println()
		return
	}
	summary := map[string]any{"concurrency": *conc, "rate": *rate, "duration_s": dur.Seconds(), "runs": *runs,
		"median": medians, "runs_by_target": results}
	if len(order) >= 2 {
		pw := map[string]string{}
		for _, label := range order[1:] {
			pw[label] = fmt.Sprintf("%s/%s = %.2f (pairwise %.2f), added p50 %+.0f µs", label, base,
				medians[label].Throughput/medians[base].Throughput, pairwise[label], addedP50[label])
		}
		summary["vs_first"] = pw
	}
	if len(order) == 2 {
		a, b := medians[order[0]], medians[order[1]]
		summary["throughput_ratio"] = fmt.Sprintf("%s/%s = %.2f", order[0], order[1], a.Throughput/b.Throughput)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(summary)
}

func newTargeter(url string, body []byte) vegeta.Targeter {
	return vegeta.NewStaticTargeter(vegeta.Target{
		Method: "POST", URL: url, Body: body,
		Header: http.Header{"Content-Type": []string{"application/json"}},
	})
}

// run is one attack: closed loop with conc workers when rate is 0,
// otherwise open loop at rate requests per second.
func run(url string, body []byte, conc uint64, rate int, dur time.Duration) runResult {
	tr := newTargeter(url, body)
	var at *vegeta.Attacker
	pace := vegeta.Rate{Freq: rate, Per: time.Second}
	if rate == 0 {
		at = vegeta.NewAttacker(vegeta.Workers(conc), vegeta.MaxWorkers(conc), vegeta.KeepAlive(true), vegeta.Connections(int(conc)))
	} else {
		at = vegeta.NewAttacker(vegeta.Workers(conc), vegeta.MaxWorkers(10000), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))
	}
	lat := make([]time.Duration, 0, 1<<16)
	var ok, n uint64
	errs := map[string]int{}
	start := time.Now()
	for res := range at.Attack(tr, pace, dur, "load") {
		n++
		lat = append(lat, res.Latency)
		if res.Error == "" && res.Code >= 200 && res.Code < 300 {
			ok++
		} else {
			msg := fmt.Sprintf("%d %s", res.Code, res.Error)
			if len(res.Body) > 0 {
				msg += ": " + strings.TrimSpace(string(res.Body[:min(len(res.Body), 300)]))
			}
			errs[msg]++
		}
	}
	for msg, k := range topN(errs, 5) {
		fmt.Fprintf(os.Stderr, "  %s: %d × %s\n", url, k, msg)
	}
	elapsed := time.Since(start)
	q := quantiles(lat)
	rr := runResult{
		Throughput: float64(ok) / elapsed.Seconds(),
		P50:        q(0.50), P99: q(0.99), P999: q(0.999), Max: q(1),
		Requests: n, Failed: n - ok,
	}
	if n > 0 {
		rr.Success = float64(ok) / float64(n)
	}
	return rr
}

// quantiles sorts d in place and returns the exact q-quantile function
// (nearest rank) in milliseconds.
func quantiles(d []time.Duration) func(q float64) float64 {
	slices.Sort(d)
	return func(q float64) float64 {
		if len(d) == 0 {
			return 0
		}
		i := int(math.Ceil(q*float64(len(d)))) - 1
		return float64(d[max(0, min(i, len(d)-1))]) / 1e6
	}
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func median(rs []runResult) runResult {
	pick := func(f func(runResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	return runResult{
		Throughput: pick(func(r runResult) float64 { return r.Throughput }),
		P50:        pick(func(r runResult) float64 { return r.P50 }),
		P99:        pick(func(r runResult) float64 { return r.P99 }),
		P999:       pick(func(r runResult) float64 { return r.P999 }),
		Max:        pick(func(r runResult) float64 { return r.Max }),
		Success:    pick(func(r runResult) float64 { return r.Success }),
		Requests:   uint64(pick(func(r runResult) float64 { return float64(r.Requests) })),
		Failed:     uint64(pick(func(r runResult) float64 { return float64(r.Failed) })),
	}
}

// recordSummary is what record prints: one JSON line per run.
type recordSummary struct {
	Case     string         `json:"case,omitempty"`
	Label    string         `json:"label,omitempty"`
	Run      int            `json:"run,omitempty"`
	Rate     int            `json:"rate"`
	Duration float64        `json:"duration_s"`
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Codes    map[string]int `json:"codes"`
	Errors   map[string]int `json:"errors,omitempty"` // error text → count, the 5 most frequent
	P50      float64        `json:"p50_ms"`
	P90      float64        `json:"p90_ms"`
	P99      float64        `json:"p99_ms"`
	P999     float64        `json:"p999_ms"`
	Max      float64        `json:"max_ms"`
	MaxAt    float64        `json:"max_at_s"` // when the slowest request was sent, from the start
	Tries    int            `json:"tries,omitempty"`
	Backend  float64        `json:"backend_requests,omitempty"` // delta of the -count metric
	Extra    *float64       `json:"extra_ratio,omitempty"`      // backend requests / requests - 1
	Events   []string       `json:"events,omitempty"`
	Timeline []second       `json:"timeline"`
}

// second is one second of the run, by send time.
type second struct {
	T        int     `json:"t"`
	Requests int     `json:"n"`
	Failed   int     `json:"failed"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func record(args []string) {
	fs := flag.NewFlagSet("record", flag.ExitOnError)
	url := fs.String("url", "", "target URL")
	bodyFile := fs.String("body", "", "request body file")
	rate := fs.Int("rate", 1000, "requests per second (open loop)")
	dur := fs.Duration("duration", 30*time.Second, "duration of the attack")
	timeout := fs.Duration("timeout", 10*time.Second, "client timeout per request")
	out := fs.String("out", "", "write every request's result here as CSV")
	label := fs.String("label", "", "label for the summary")
	kase := fs.String("case", "", "case name for the summary")
	runNo := fs.Int("run", 0, "run number for the summary")
	var hooks, counts multiFlag
	fs.Var(&hooks, "at", "OFFSET=shell command, run OFFSET after the start (repeatable)")
	fs.Var(&counts, "count", "Prometheus /metrics URL of a backend, scraped before and after (repeatable)")
	metric := fs.String("count-metric", "bulwark_node_infer_requests_total", "metric summed over -count URLs")
	warmup := fs.Duration("warmup", 0, "send at the same rate this long first, on the same connections, and discard the results")
	fs.Parse(args)
	if *url == "" || *rate <= 0 || *dur <= 0 || *dur > time.Hour {
		log.Fatal("record: -url, a positive -rate and a -duration up to 1h are required")
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	type hook struct {
		at  time.Duration
		cmd string
	}
	var hs []hook
	for _, h := range hooks {
		off, cmd, ok := strings.Cut(h, "=")
		d, err := time.ParseDuration(off)
		if !ok || err != nil || d < 0 || d > *dur {
			log.Fatalf("record: -at %q: want OFFSET=command with OFFSET within the duration", h)
		}
		hs = append(hs, hook{d, cmd})
	}
	// One client for the warm-up and the attack, so that the attack starts
	// on the warm-up's connections (a vegeta attacker runs one attack).
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        20000,
		MaxIdleConnsPerHost: 20000,
		IdleConnTimeout:     90 * time.Second,
	}}
	attacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(64), vegeta.MaxWorkers(20000))
	}
	if *warmup > 0 {
		// The load generator's own start (dialing, spawning workers) is
		// slow on a small machine; keep it out of the measurement.
		for range attacker().Attack(newTargeter(*url, body), vegeta.Rate{Freq: *rate, Per: time.Second}, *warmup, "warmup") {
		}
	}
	at := attacker()
	before, beforeOK := scrape(counts, *metric)

	var mu sync.Mutex
	var events []string
	start := time.Now()
	var timers []*time.Timer
	for _, h := range hs {
		timers = append(timers, time.AfterFunc(h.at, func() {
			t := time.Since(start)
			b, err := exec.Command("sh", "-c", h.cmd).CombinedOutput()
			ev := fmt.Sprintf("%.3fs %s", t.Seconds(), h.cmd)
			if err != nil {
				ev += fmt.Sprintf(" (failed: %v %s)", err, bytes.TrimSpace(b))
			}
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			fmt.Fprintf(os.Stderr, "event %s\n", ev)
		}))
	}
	type rec struct {
		off, lat time.Duration
		code     uint16
		tries    int
		replica  string
		err      string
	}
	recs := make([]rec, 0, *rate*int(dur.Seconds()+1))
	for res := range at.Attack(newTargeter(*url, body), vegeta.Rate{Freq: *rate, Per: time.Second}, *dur, *label) {
		r := rec{off: res.Timestamp.Sub(start), lat: res.Latency, code: res.Code, err: res.Error}
		if res.Headers != nil {
			r.tries, _ = strconv.Atoi(res.Headers.Get("X-Bulwark-Tries"))
			r.replica = res.Headers.Get("X-Bulwark-Replica")
		}
		recs = append(recs, r)
	}
	for _, t := range timers {
		t.Stop()
	}
	if len(counts) > 0 {
		time.Sleep(500 * time.Millisecond) // let cancelled hedges reach the backends' counters
	}
	after, afterOK := scrape(counts, *metric)
	slices.SortFunc(recs, func(a, b rec) int { return int(a.off - b.off) })

	s := recordSummary{Case: *kase, Label: *label, Run: *runNo, Rate: *rate, Duration: dur.Seconds(),
		Codes: map[string]int{}, Errors: map[string]int{}}
	lats := make([]time.Duration, len(recs))
	var maxLat time.Duration
	buckets := map[int][]time.Duration{}
	bucketFailed := map[int]int{}
	for i, r := range recs {
		s.Requests++
		lats[i] = r.lat
		s.Codes[strconv.Itoa(int(r.code))]++
		failed := r.err != "" || r.code < 200 || r.code >= 300
		sec := int(r.off / time.Second)
		buckets[sec] = append(buckets[sec], r.lat)
		if failed {
			s.Failed++
			bucketFailed[sec]++
			s.Errors[r.err]++
		} else {
			s.OK++
		}
		s.Tries += r.tries
		if r.lat > maxLat {
			maxLat, s.MaxAt = r.lat, r.off.Seconds()
		}
	}
	s.Errors = topN(s.Errors, 5)
	q := quantiles(lats)
	s.P50, s.P90, s.P99, s.P999, s.Max = q(0.5), q(0.9), q(0.99), q(0.999), q(1)
	secs := make([]int, 0, len(buckets))
	for k := range buckets {
		secs = append(secs, k)
	}
	slices.Sort(secs)
	for _, k := range secs {
		bq := quantiles(buckets[k])
		s.Timeline = append(s.Timeline, second{T: k, Requests: len(buckets[k]), Failed: bucketFailed[k], P99: bq(0.99), Max: bq(1)})
	}
	mu.Lock()
	s.Events = events
	mu.Unlock()
	if beforeOK && afterOK && s.Requests > 0 {
		s.Backend = after - before
		x := s.Backend/float64(s.Requests) - 1
		s.Extra = &x
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		w := csv.NewWriter(f)
		w.Write([]string{"sent_ms", "latency_us", "code", "tries", "replica", "error"})
		for _, r := range recs {
			w.Write([]string{fmt.Sprintf("%.3f", float64(r.off)/1e6), strconv.FormatInt(r.lat.Microseconds(), 10),
				strconv.Itoa(int(r.code)), strconv.Itoa(r.tries), r.replica, r.err})
		}
		w.Flush()
		if err := errors2(w.Error(), f.Close()); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "%s %s run %d: %d requests, %d failed, p50 %.3f p99 %.3f p99.9 %.3f max %.1f ms (at %.2fs)\n",
		s.Case, s.Label, s.Run, s.Requests, s.Failed, s.P50, s.P99, s.P999, s.Max, s.MaxAt)
	b, _ := json.Marshal(s)
	fmt.Println(string(b))
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func topN(m map[string]int, n int) map[string]int {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.v - a.v })
	out := map[string]int{}
	for i := 0; i < len(all) && i < n; i++ {
		out[all[i].k] = all[i].v
	}
	return out
}

// scrape sums every sample of metric over the given /metrics URLs. ok is
// false if there are no URLs or any scrape fails.
func scrape(urls []string, metric string) (total float64, ok bool) {
	if len(urls) == 0 {
		return 0, false
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		resp, err := c.Get(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scrape %s: %v\n", u, err)
			return 0, false
		}
		sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, metric) {
				continue
			}
			rest := line[len(metric):]
			if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
				continue // a longer name with the same prefix
			}
			f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err == nil {
				total += v
			}
		}
		resp.Body.Close()
	}
	return total, true
}

// report reads record's JSON lines (from files, or stdin) and prints one
// Markdown table row per case and label: totals of requests and failures,
// failures run by run, medians of the percentiles over runs, the worst
// max, and the median extra-request ratio.
func report(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	title := fs.String("title", "", "heading printed above the table")
	fs.Parse(args)
	var in []io.Reader
	for _, f := range fs.Args() {
		fh, err := os.Open(f)
		if err != nil {
			log.Fatal(err)
		}
		defer fh.Close()
		in = append(in, fh)
	}
	if len(in) == 0 {
		in = append(in, os.Stdin)
	}
	type key struct{ kase, label string }
	var order []key
	groups := map[key][]recordSummary{}
	for _, r := range in {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 || line[0] != '{' {
				continue
			}
			var s recordSummary
			if err := json.Unmarshal(line, &s); err != nil {
				log.Fatalf("report: %v", err)
			}
			k := key{s.Case, s.Label}
			if _, seen := groups[k]; !seen {
				order = append(order, k)
			}
			groups[k] = append(groups[k], s)
		}
	}
	if *title != "" {
		fmt.Printf("%s\n\n", *title)
	}
	fmt.Println("| case | target | runs | requests | failed (total) | failed per run | p50 ms | p99 ms | p99.9 ms | max ms (median) | max ms (worst) | extra requests |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, k := range order {
		g := groups[k]
		var req, failed int
		var perRun []string
		var p50, p99, p999, mx, extra []float64
		worst := 0.0
		for _, s := range g {
			req += s.Requests
			failed += s.Failed
			perRun = append(perRun, strconv.Itoa(s.Failed))
			p50 = append(p50, s.P50)
			p99 = append(p99, s.P99)
			p999 = append(p999, s.P999)
			mx = append(mx, s.Max)
			worst = max(worst, s.Max)
			if s.Extra != nil {
				extra = append(extra, *s.Extra)
			}
		}
		ex := "n/a"
		if len(extra) > 0 {
			ex = fmt.Sprintf("%.2f %%", medianOf(extra)*100)
		}
		fmt.Printf("| %s | %s | %d | %d | %d | %s | %.3f | %.3f | %.3f | %.1f | %.1f | %s |\n",
			k.kase, k.label, len(g), req, failed, strings.Join(perRun, " "),
			medianOf(p50), medianOf(p99), medianOf(p999), medianOf(mx), worst, ex)
	}
	fmt.Println()
	// Then what the failures were, and when the slowest request was sent.
	var notes []string
	for _, k := range order {
		for _, s := range groups[k] {
			line := fmt.Sprintf("- %s / %s / run %d: max %.1f ms (sent at %.2f s)", k.kase, k.label, s.Run, s.Max, s.MaxAt)
			if s.Failed > 0 {
				var errs []string
				for e, n := range s.Errors {
					errs = append(errs, fmt.Sprintf("%d × %q", n, e))
				}
				slices.Sort(errs)
				line += "; failed: " + strings.Join(errs, ", ")
			}
			notes = append(notes, line)
		}
	}
	fmt.Println(strings.Join(notes, "\n"))
	fmt.Println()
}
