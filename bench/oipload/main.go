// Command oipload measures the node's HTTP inference path against a bare
// net/http handler, side by side, with vegeta as the load generator.
//
//	oipload bare -listen 127.0.0.1:8090
//	oipload attack -name node=http://127.0.0.1:8000/v2/models/iris/infer \
//	               -name bare=http://127.0.0.1:8090/v2/models/iris/infer \
//	               -body request.json -concurrency 16 -duration 10s -runs 5
//
// The bare handler decodes the same OIP JSON with encoding/json and returns
// a fixed answer: the ceiling of what any Go OIP server can do on this
// machine. attack alternates the targets run by run so that machine noise
// hits both alike, and prints medians and the throughput ratio.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: oipload bare|attack [flags]")
	}
	switch os.Args[1] {
	case "bare":
		bare(os.Args[2:])
	case "attack":
		attack(os.Args[2:])
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

type targets []string

func (t *targets) String() string     { return strings.Join(*t, ",") }
func (t *targets) Set(v string) error { *t = append(*t, v); return nil }

type runResult struct {
	Throughput float64 `json:"throughput_rps"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Success    float64 `json:"success_ratio"`
	Requests   uint64  `json:"requests"`
}

func attack(args []string) {
	fs := flag.NewFlagSet("attack", flag.ExitOnError)
	var names targets
	fs.Var(&names, "name", "label=url (repeatable)")
	bodyFile := fs.String("body", "", "request body file")
	conc := fs.Uint64("concurrency", 16, "concurrent workers")
	dur := fs.Duration("duration", 10*time.Second, "duration of each run")
	runs := fs.Int("runs", 5, "runs per target")
	fs.Parse(args)
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	results := map[string][]runResult{}
	var order []string
	for r := 0; r < *runs; r++ {
		for _, nv := range names {
			label, url, _ := strings.Cut(nv, "=")
			if r == 0 {
				order = append(order, label)
			}
			res := run(url, body, *conc, *dur)
			fmt.Fprintf(os.Stderr, "run %d %-6s %8.0f req/s p50 %.3f ms p99 %.3f ms success %.4f\n", r+1, label, res.Throughput, res.P50, res.P99, res.Success)
			results[label] = append(results[label], res)
		}
	}
	summary := map[string]any{"concurrency": *conc, "duration_s": dur.Seconds(), "runs": *runs}
	medians := map[string]runResult{}
	for _, label := range order {
		medians[label] = median(results[label])
	}
	summary["median"] = medians
	if len(order) == 2 {
		a, b := medians[order[0]], medians[order[1]]
		summary["throughput_ratio"] = fmt.Sprintf("%s/%s = %.2f", order[0], order[1], a.Throughput/b.Throughput)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(summary)
}

func run(url string, body []byte, conc uint64, dur time.Duration) runResult {
	tr := vegeta.NewStaticTargeter(vegeta.Target{
		Method: "POST", URL: url, Body: body,
		Header: http.Header{"Content-Type": []string{"application/json"}},
	})
	at := vegeta.NewAttacker(vegeta.Workers(conc), vegeta.MaxWorkers(conc), vegeta.KeepAlive(true), vegeta.Connections(int(conc)))
	var m vegeta.Metrics
	start := time.Now()
	for res := range at.Attack(tr, vegeta.Rate{Freq: 0}, dur, "load") {
		m.Add(res)
	}
	m.Close()
	elapsed := time.Since(start)
	return runResult{
		Throughput: float64(m.Requests) * m.Success / elapsed.Seconds(),
		P50:        float64(m.Latencies.P50) / 1e6,
		P99:        float64(m.Latencies.P99) / 1e6,
		Success:    m.Success,
		Requests:   m.Requests,
	}
}

func median(rs []runResult) runResult {
	pick := func(f func(runResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return runResult{
		Throughput: pick(func(r runResult) float64 { return r.Throughput }),
		P50:        pick(func(r runResult) float64 { return r.P50 }),
		P99:        pick(func(r runResult) float64 { return r.P99 }),
		Success:    pick(func(r runResult) float64 { return r.Success }),
		Requests:   rs[len(rs)/2].Requests,
	}
}
