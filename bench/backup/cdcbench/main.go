// Command cdcbench measures the chunker on a data set made by gendata: the
// throughput of the chunking libraries on float32 weights, and the bytes a
// fine-tuned version adds to a repository that holds the base version, for
// plain content-defined chunking and for model-aware chunking (tensor
// boundaries as cut points), at several chunk sizes.
//
//	go run ./bench/backup/gendata -out SITE -size 2GiB
//	go run ./bench/backup/gendata -finetune-of SITE -changed 0.10   # prints replaced_bytes
//	go run ./bench/backup/cdcbench -site SITE -replaced N
//
// Version 1 of every model is the base, the latest version the fine-tune.
// Output is Markdown.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/restic/chunker"

	"github.com/bulwark-ml/bulwark/internal/chunking"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

func main() {
	site := flag.String("site", "", "site made by gendata, with a base and a fine-tuned version of each model")
	replaced := flag.Int64("replaced", 0, "bytes of the tensors the fine-tune replaced (gendata prints them)")
	sizes := flag.String("avg", "256KiB,512KiB,1MiB,2MiB", "average chunk sizes to compare")
	throughputMiB := flag.Int("throughput-mib", 256, "MiB of weights held in memory for the throughput runs")
	skipDedup := flag.Bool("throughput-only", false, "measure throughput only")
	flag.Parse()
	if *site == "" {
		fmt.Fprintln(os.Stderr, "cdcbench: -site is required")
		os.Exit(2)
	}
	if err := run(*site, *replaced, *sizes, *throughputMiB, *skipDedup); err != nil {
		fmt.Fprintln(os.Stderr, "cdcbench:", err)
		os.Exit(1)
	}
}

func run(site string, replaced int64, sizeList string, throughputMiB int, throughputOnly bool) error {
	base, tuned, err := versions(site)
	if err != nil {
		return err
	}
	var avgs []int
	for _, s := range strings.Split(sizeList, ",") {
		n, err := parseKiB(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		avgs = append(avgs, n)
	}
	fmt.Printf("data set: %d base files (%s), %d fine-tuned files (%s), replaced tensors %s; GOMAXPROCS %d\n\n",
		len(base), mib(totalSize(base)), len(tuned), mib(totalSize(tuned)), mib(replaced), runtime.GOMAXPROCS(0))

	if err := throughput(largestSafetensors(base), throughputMiB, avgs); err != nil {
		return err
	}
	if throughputOnly {
		return nil
	}
	fmt.Print("\n## Bytes added by the fine-tune\n\n")
	fmt.Println("| chunker | avg | min/max | base chunks | mean chunk | new bytes | new / replaced |")
	fmt.Println("| --- | --- | --- | ---: | ---: | ---: | ---: |")
	for _, avg := range avgs {
		opts := optionsFor(avg)
		for _, mode := range []string{"fastcdc plain", "fastcdc model-aware", "rabin plain"} {
			if mode == "rabin plain" && avg != 1<<20 {
				continue // restic's own sizes only
			}
			ids := map[[32]byte]bool{}
			var chunks, baseBytes int64
			for _, f := range base {
				n, err := chunkFile(f, mode, opts, func(c []byte) { ids[sha256.Sum256(c)] = true })
				if err != nil {
					return err
				}
				chunks += n
			}
			baseBytes = totalSize(base)
			var added int64
			for _, f := range tuned {
				if _, err := chunkFile(f, mode, opts, func(c []byte) {
					id := sha256.Sum256(c)
					if !ids[id] {
						ids[id] = true
						added += int64(len(c))
					}
				}); err != nil {
					return err
				}
			}
			ratio := "n/a"
			if replaced > 0 {
				ratio = fmt.Sprintf("%.3f×", float64(added)/float64(replaced))
			}
			minMax := fmt.Sprintf("%s/%s", kib(opts.Min), kib(opts.Max))
			if mode == "rabin plain" {
				minMax = "512 KiB/8 MiB"
			}
			fmt.Printf("| %s | %s | %s | %d | %s | %s | %s |\n", mode, kib(avg), minMax, chunks, kib(int(baseBytes/max(chunks, 1))), mib(added), ratio)
		}
	}
	return nil
}

// optionsFor keeps the min and max at the same ratio to the average for
// every size compared: a quarter and four times.
func optionsFor(avg int) chunking.Options {
	return chunking.Options{Min: avg / 4, Avg: avg, Max: avg * 4}
}

// chunkFile chunks one file and calls fn with each chunk.
func chunkFile(path, mode string, opts chunking.Options, fn func([]byte)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var n int64
	if mode == "rabin plain" {
		c := chunker.New(f, chunker.Pol(0x3DA3358B4DC173)) // restic's sizes: 512 KiB min, 1 MiB avg, 8 MiB max
		buf := make([]byte, chunker.MaxSize)
		for {
			ch, err := c.Next(buf)
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			fn(ch.Data)
			n++
		}
	}
	var bounds []int64
	if mode == "fastcdc model-aware" {
		bounds, err = chunking.Boundaries(f, st.Size(), path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cdcbench: %v (plain chunking for this file)\n", err)
		}
	}
	c := chunking.New(f, bounds, opts)
	for {
		ch, err := c.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		fn(ch)
		n++
	}
}

// throughput chunks the same in-memory weights with each library and size.
// On a shared machine wall time depends on the neighbours, so the rate is
// also given per second of this process's CPU time (user + system).
func throughput(path string, limitMiB int, avgs []int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limitMiB)<<20))
	f.Close()
	if err != nil {
		return err
	}
	fmt.Printf("## Chunking throughput (%s of float32 weights from %s, in memory, one goroutine)\n\n", mib(int64(len(data))), filepath.Base(path))
	fmt.Println("| library | avg | MB/s (wall) | MB per CPU second |")
	fmt.Println("| --- | --- | ---: | ---: |")
	measure := func(chunkAll func()) (wall, cpu float64) {
		for range 3 { // the best of three: neighbours only ever slow a run down
			start, cpuStart := time.Now(), cpuTime()
			chunkAll()
			wall = max(wall, float64(len(data))/1e6/time.Since(start).Seconds())
			cpu = max(cpu, float64(len(data))/1e6/(cpuTime()-cpuStart).Seconds())
		}
		return wall, cpu
	}
	for _, avg := range avgs {
		wall, cpu := measure(func() {
			c := chunking.New(bytes.NewReader(data), nil, optionsFor(avg))
			for {
				if _, err := c.Next(); err != nil {
					break
				}
			}
		})
		fmt.Printf("| FastCDC (go-cdc-chunkers fastcdc-v1.0.0) | %s | %.0f | %.0f |\n", kib(avg), wall, cpu)
		wall, cpu = measure(func() {
			c := chunker.NewWithBoundaries(bytes.NewReader(data), chunker.Pol(0x3DA3358B4DC173), uint(avg/4), uint(avg*4))
			c.SetAverageBits(bits.Len(uint(avg)) - 1)
			buf := make([]byte, avg*4)
			for {
				if _, err := c.Next(buf); err != nil {
					break
				}
			}
		})
		fmt.Printf("| Rabin (restic/chunker v0.4.0) | %s | %.0f | %.0f |\n", kib(avg), wall, cpu)
	}
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// versions lists the files of each model's version 1 and latest version.
func versions(site string) (base, tuned []string, err error) {
	store, err := modelstore.Open(site)
	if err != nil {
		return nil, nil, err
	}
	names, err := store.Names()
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		latest, err := store.Latest(name)
		if err != nil {
			return nil, nil, err
		}
		if latest == "1" {
			return nil, nil, fmt.Errorf("model %s has no fine-tuned version; run gendata -finetune-of first", name)
		}
		for _, v := range []struct {
			version string
			into    *[]string
		}{{"1", &base}, {latest, &tuned}} {
			m, err := store.Manifest(name, v.version)
			if err != nil {
				return nil, nil, err
			}
			for _, f := range m.Files {
				*v.into = append(*v.into, store.Path(m, f.Path))
			}
		}
	}
	return base, tuned, nil
}

func largestSafetensors(files []string) string {
	sort.Slice(files, func(i, j int) bool { return fileSize(files[i]) > fileSize(files[j]) })
	for _, f := range files {
		if strings.HasSuffix(f, ".safetensors") {
			return f
		}
	}
	return files[0]
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func totalSize(files []string) int64 {
	var n int64
	for _, f := range files {
		n += fileSize(f)
	}
	return n
}

func parseKiB(s string) (int, error) {
	var n int
	switch {
	case strings.HasSuffix(s, "MiB"):
		_, err := fmt.Sscanf(s, "%dMiB", &n)
		return n << 20, err
	case strings.HasSuffix(s, "KiB"):
		_, err := fmt.Sscanf(s, "%dKiB", &n)
		return n << 10, err
	}
	return 0, fmt.Errorf("size %q: want NKiB or NMiB", s)
}

func kib(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
