// Command gendata writes the backup benchmark's data set: a site whose
// model store holds realistic model artifacts (sharded safetensors of a
// decoder LLM, a BERT-like encoder in safetensors, MLP classifiers in ONNX,
// with float32 weights drawn from a normal distribution), and then a
// fine-tuned version of every model in which a fraction of the tensors
// carry new values.
//
//	go run ./bench/backup/gendata -out SITE -size 2GiB
//	go run ./bench/backup/gendata -finetune-of SITE -changed 0.10
//
// The first form creates version 1 of each model under SITE/models; the
// second adds the next version of each model next to it, copying unchanged
// tensors and rewriting the headers (a new metadata entry, so tensors move),
// and prints the bytes of the replaced tensors on a "replaced_bytes N" line.
// Everything is deterministic for a given -seed.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	out := flag.String("out", "", "site directory to create the data set in")
	sizeFlag := flag.String("size", "2GiB", "approximate size of the data set (B, KiB, MiB, GiB)")
	fineTuneOf := flag.String("finetune-of", "", "site directory whose models get a fine-tuned version")
	changed := flag.Float64("changed", 0.10, "fraction of each model's tensors the fine-tune replaces")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()

	var err error
	switch {
	case *out != "" && *fineTuneOf == "":
		var size int64
		if size, err = parseSize(*sizeFlag); err == nil {
			err = generate(*out, size, *seed)
		}
	case *fineTuneOf != "" && *out == "":
		if *changed <= 0 || *changed > 1 {
			err = fmt.Errorf("-changed %v: want a fraction in (0, 1]", *changed)
			break
		}
		err = fineTuneSite(*fineTuneOf, *changed, *seed)
	default:
		err = fmt.Errorf("give either -out DIR (with -size) or -finetune-of DIR (with -changed)")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f <= 0 {
				return 0, fmt.Errorf("size %q: want a positive number and a unit", s)
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number and a unit (B, KiB, MiB, GiB)", s)
	}
	return n, nil
}
