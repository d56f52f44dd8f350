// Command reqloop sends an exact number of identical POST requests to one
// URL from a few concurrent workers over kept-alive connections, then
// stops. bench/memory.sh uses it to put a known request count through a
// node between two memory readings.
//
//	reqloop -url http://127.0.0.1:18000/v2/models/iris/infer -body req.json \
//	        -n 100000 -concurrency 8 [-timeout 10m]
//
// It prints one JSON line (requests sent, answered 200, failed, seconds,
// requests/s) and exits 1 if any request failed or the timeout cut the
// loop short.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "target URL (POST)")
	bodyFile := flag.String("body", "", "request body file (JSON)")
	n := flag.Int64("n", 10000, "number of requests")
	conc := flag.Int("concurrency", 8, "concurrent workers")
	timeout := flag.Duration("timeout", 10*time.Minute, "stop after this long even if requests remain")
	flag.Parse()
	if *url == "" || *bodyFile == "" || *n <= 0 || *conc <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}
	client := &http.Client{Transport: tr}
	var next, ok, failed atomic.Int64
	var firstErr sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= *n && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
				if err != nil {
					log.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.Do(func() { log.Printf("request failed: %v", err) })
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstErr.Do(func() { log.Printf("status %d", resp.StatusCode) })
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	tr.CloseIdleConnections()
	sent := ok.Load() + failed.Load()
	out, _ := json.Marshal(map[string]any{
		"requests": sent, "ok": ok.Load(), "failed": failed.Load(),
		"seconds": elapsed, "rps": float64(ok.Load()) / elapsed,
	})
	fmt.Println(string(out))
	if failed.Load() > 0 || ok.Load() < *n {
		os.Exit(1)
	}
}
