package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/onnx"
)

const (
	shardMax   = 400 << 20 // safetensors shard size, as sharded checkpoints use
	onnxMax    = 256 << 20 // per ONNX file: the encoder holds a whole model in memory
	llmShare   = 0.55
	bertShare  = 0.15
	onnxShare  = 0.30
	firstVersn = "1"
)

// generate writes version 1 of every model of the data set into the model
// store of the site at dir.
func generate(dir string, size int64, seed uint64) error {
	models := filepath.Join(dir, "models")
	if entries, err := os.ReadDir(models); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s already holds models; pick an empty directory", models)
	}
	var total int64
	add := func(m *modelstore.Manifest, err error) error {
		if err != nil {
			return err
		}
		total += m.Size()
		fmt.Printf("wrote %s: %d files, %d bytes\n", m.Ref(), len(m.Files), m.Size())
		return nil
	}
	if err := add(writeVersion(models, "llm", firstVersn, "safetensors", func(vdir string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error) {
		files, err := writeLLM(vdir, decoderLLM(int64(float64(size)*llmShare)), seed)
		return files, nil, nil, err
	})); err != nil {
		return err
	}
	if err := add(writeVersion(models, "encoder", firstVersn, "safetensors", func(vdir string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error) {
		ts := encoderBERT(int64(float64(size) * bertShare))
		e, err := writeSafetensors(filepath.Join(vdir, "model.safetensors"), ts, map[string]string{"format": "pt"}, freshWeights(seed, "encoder"))
		if err != nil {
			return nil, nil, nil, err
		}
		cfg, err := writeJSON(filepath.Join(vdir, "config.json"), map[string]any{"architectures": []string{"BertModel"}, "tensors": len(ts)})
		return []modelstore.FileEntry{e, cfg}, nil, nil, err
	})); err != nil {
		return err
	}
	onnxBudget := int64(float64(size) * onnxShare)
	count := max(2, int((onnxBudget+onnxMax-1)/onnxMax))
	for i := range count {
		name := fmt.Sprintf("classifier-%d", i+1)
		if err := add(writeVersion(models, name, firstVersn, "onnx", func(vdir string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error) {
			return writeClassifier(filepath.Join(vdir, "model.onnx"), onnxBudget/int64(count), seed, name)
		})); err != nil {
			return err
		}
	}
	fmt.Printf("total_bytes %d\n", total)
	return nil
}

func freshWeights(seed uint64, model string) func(tensorSpec, io.Writer) error {
	return func(t tensorSpec, w io.Writer) error {
		return writeWeights(w, tensorRNG(seed, model, t.Name), t.bytes())
	}
}

// writeLLM writes a sharded checkpoint the way Hugging Face lays one out:
// shards, an index mapping tensors to shards, a config and a tokenizer.
func writeLLM(dir string, ts []tensorSpec, seed uint64) ([]modelstore.FileEntry, error) {
	shards := shard(ts, shardMax)
	var files []modelstore.FileEntry
	weightMap := map[string]string{}
	for i, s := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		e, err := writeSafetensors(filepath.Join(dir, name), s, map[string]string{"format": "pt"}, freshWeights(seed, "llm"))
		if err != nil {
			return nil, err
		}
		files = append(files, e)
		for _, t := range s {
			weightMap[t.Name] = name
		}
	}
	idx, err := writeJSON(filepath.Join(dir, "model.safetensors.index.json"), map[string]any{"weight_map": weightMap})
	if err != nil {
		return nil, err
	}
	cfg, err := writeJSON(filepath.Join(dir, "config.json"), map[string]any{"architectures": []string{"LlamaForCausalLM"}, "tensors": len(ts)})
	if err != nil {
		return nil, err
	}
	tok, err := writeTokenizer(filepath.Join(dir, "tokenizer.json"), seed)
	if err != nil {
		return nil, err
	}
	return append(files, idx, cfg, tok), nil
}

// writeTokenizer writes a vocabulary of made-up word pieces: a text file
// of about a megabyte, as tokenizers are.
func writeTokenizer(path string, seed uint64) (modelstore.FileEntry, error) {
	rng := tensorRNG(seed, "tokenizer")
	vocab := map[string]int{}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for len(vocab) < 32000 {
		var b strings.Builder
		for range 2 + rng.IntN(9) {
			b.WriteByte(letters[rng.IntN(len(letters))])
		}
		if _, ok := vocab[b.String()]; !ok {
			vocab[b.String()] = len(vocab)
		}
	}
	return writeJSON(path, map[string]any{"version": "1.0", "model": map[string]any{"type": "BPE", "vocab": vocab}})
}

func writeJSON(path string, v any) (modelstore.FileEntry, error) {
	hf, err := createHashed(path)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	enc := json.NewEncoder(hf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		hf.abort()
		return modelstore.FileEntry{}, err
	}
	return hf.commit()
}

// writeClassifier writes an MLP of Gemm+Relu layers as an ONNX model the
// builtin runtime can load, with its weights as raw_data initializers.
func writeClassifier(path string, budget int64, seed uint64, model string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	ts, width, classes := mlpClassifier(budget)
	m := classifierModel(ts, func(t tensorSpec) []byte {
		return weightBytes(tensorRNG(seed, model, t.Name), t.bytes())
	}, "")
	e, err := writeBytes(path, onnx.Encode(m))
	in := []modelstore.IOSpec{{Name: "input", Datatype: "FP32", Shape: []int{-1, width}}}
	out := []modelstore.IOSpec{{Name: "logits", Datatype: "FP32", Shape: []int{-1, classes}}}
	return []modelstore.FileEntry{e}, in, out, err
}

func classifierModel(ts []tensorSpec, values func(tensorSpec) []byte, doc string) *onnx.Model {
	g := &onnx.Graph{Name: "classifier"}
	x := "input"
	for i := 0; i+1 < len(ts); i += 2 {
		w, b := ts[i], ts[i+1]
		for _, t := range []tensorSpec{w, b} {
			dims := make([]int64, len(t.Shape))
			for j, d := range t.Shape {
				dims[j] = int64(d)
			}
			g.Initializers = append(g.Initializers, &onnx.TensorProto{Name: t.Name, Dims: dims, DataType: onnx.DataFloat, RawData: values(t), HasRawData: true})
		}
		y := fmt.Sprintf("h%d", i/2)
		if i+2 == len(ts) {
			y = "logits"
		}
		g.Nodes = append(g.Nodes, &onnx.Node{Name: w.Name, OpType: "Gemm", Inputs: []string{x, w.Name, b.Name}, Outputs: []string{y},
			Attrs: []*onnx.Attribute{{Name: "transB", Type: onnx.AttrInt, I: 1}}})
		if y != "logits" {
			g.Nodes = append(g.Nodes, &onnx.Node{Name: "relu" + y, OpType: "Relu", Inputs: []string{y}, Outputs: []string{y + "r"}})
			y += "r"
		}
		x = y
	}
	width, classes := int64(ts[0].Shape[1]), int64(ts[len(ts)-1].Shape[0])
	g.Inputs = []*onnx.ValueInfo{{Name: "input", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, {Value: width, HasValue: true}}}}
	g.Outputs = []*onnx.ValueInfo{{Name: "logits", ElemType: onnx.DataFloat, HasShape: true, Dims: []onnx.Dim{{Param: "batch"}, {Value: classes, HasValue: true}}}}
	return &onnx.Model{IRVersion: 8, ProducerName: "bulwark-gendata", DocString: doc, Graph: g, OpsetImports: []onnx.OpsetID{{Version: 17}}}
}

func writeBytes(path string, b []byte) (modelstore.FileEntry, error) {
	hf, err := createHashed(path)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	if _, err := hf.Write(b); err != nil {
		hf.abort()
		return modelstore.FileEntry{}, err
	}
	return hf.commit()
}

// writeVersion fills a staging directory (named as the model store names
// its own, so an interrupted run is cleaned up by the store), writes the
// manifest and renames the directory into place.
func writeVersion(models, name, version, format string, fill func(dir string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error)) (*modelstore.Manifest, error) {
	modelDir := filepath.Join(models, name)
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(modelDir, fmt.Sprintf(".staging-%d-*", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging) // no-op after the rename
	files, inputs, outputs, err := fill(staging)
	if err != nil {
		return nil, fmt.Errorf("model %s:%s: %w", name, version, err)
	}
	m := &modelstore.Manifest{
		Schema: modelstore.ManifestSchema, Name: name, Version: version, Format: format,
		Created: time.Now().UTC(), Primary: files[0].Path, Inputs: inputs, Outputs: outputs,
		Files: files, Source: files[0].Path,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(staging, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(staging, filepath.Join(modelDir, version)); err != nil {
		return nil, fmt.Errorf("commit %s:%s: %w", name, version, err)
	}
	return m, atomicfile.SyncDir(modelDir)
}
