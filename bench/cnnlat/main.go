// Command cnnlat measures the single-input latency of an ONNX model in the
// builtin Go interpreter, the counterpart of bench/ort/cnn_latency.cjs:
//
//	cnnlat [-shape 1,3,32,32] [-runs 200] [-warmup 20] MODEL.onnx
//
// It loads the model with builtin.LoadBytes, fills the first input with the
// same xorshift32 data as cnn_latency.cjs, runs warmup untimed calls, then
// times runs calls of Model.Infer one after another on one goroutine, and
// prints one JSON line with the same fields as cnn_latency.cjs (p50_us,
// mean_us, min_us in microseconds per call). Run it with GOMAXPROCS=1 for
// the single-threaded comparison.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/runtime/builtin"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

func main() {
	shapeFlag := flag.String("shape", "1,3,32,32", "input shape, comma-separated")
	runs := flag.Int("runs", 200, "timed runs")
	warmup := flag.Int("warmup", 20, "untimed runs first")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cnnlat [-shape 1,3,32,32] [-runs 200] [-warmup 20] MODEL.onnx")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *runs <= 0 || *warmup < 0 {
		flag.Usage()
		os.Exit(2)
	}
	path := flag.Arg(0)
	var shape []int
	for _, s := range strings.Split(*shapeFlag, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			log.Fatalf("-shape needs positive integers, e.g. 1,3,32,32")
		}
		shape = append(shape, d)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	m, err := builtin.LoadBytes(raw)
	if err != nil {
		log.Fatal(err)
	}
	inputs := map[string]*tensor.Tensor{
		m.Signature().Inputs[0].Name: tensor.FromFloat32(shape, xorshiftInput(tensor.NumElements(shape))),
	}
	ctx := context.Background()
	for range *warmup {
		if _, err := m.Infer(ctx, inputs, nil); err != nil {
			log.Fatal(err)
		}
	}
	times := make([]float64, *runs)
	for i := range times {
		t0 := time.Now()
		if _, err := m.Infer(ctx, inputs, nil); err != nil {
			log.Fatal(err)
		}
		times[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	sort.Float64s(times)
	mid := len(times) / 2
	p50 := times[mid]
	if len(times)%2 == 0 {
		p50 = (times[mid-1] + times[mid]) / 2
	}
	sum := 0.0
	for _, t := range times {
		sum += t
	}
	round := func(v float64) float64 { return math.Round(v*10) / 10 }
	out := map[string]any{
		"p50_us":     round(p50),
		"mean_us":    round(sum / float64(len(times))),
		"min_us":     round(times[0]),
		"runs":       *runs,
		"warmup":     *warmup,
		"shape":      shape,
		"model":      path,
		"runtime":    builtin.Name,
		"go":         runtime.Version(),
		"gomaxprocs": runtime.GOMAXPROCS(0),
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

// xorshiftInput is cnn_latency.cjs's inputData: xorshift32 from
// 0x9e3779b9, values in [-1, 1).
func xorshiftInput(n int) []float32 {
	data := make([]float32, n)
	s := uint32(0x9e3779b9)
	for i := range data {
		s ^= s << 13
		s ^= s >> 17
		s ^= s << 5
		data[i] = float32(float64(s)/4294967296*2 - 1)
	}
	return data
}
