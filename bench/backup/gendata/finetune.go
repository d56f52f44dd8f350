package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/onnx"
)

// fineTuneSite adds to every model of the site a new version in which
// about frac of the tensors hold new values. The headers change too (the
// fine-tune is recorded in the metadata or doc string), which moves every
// tensor to a new offset, as a real re-export does.
func fineTuneSite(site string, frac float64, seed uint64) error {
	store, err := modelstore.Open(site)
	if err != nil {
		return err
	}
	names, err := store.Names()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no models in %s", store.Dir())
	}
	var replaced, total int64
	for _, name := range names {
		base, err := store.Latest(name)
		if err != nil {
			return err
		}
		old, err := store.Manifest(name, base)
		if err != nil {
			return err
		}
		next, err := nextVersion(base)
		if err != nil {
			return fmt.Errorf("model %s: %w", name, err)
		}
		ft := &fineTune{store: store, old: old, frac: frac, seed: seed}
		m, err := writeVersion(store.Dir(), name, next, old.Format, ft.fill)
		if err != nil {
			return err
		}
		fmt.Printf("fine-tuned %s -> %s: replaced %d of %d tensors, %d of %d bytes\n",
			old.Ref(), m.Ref(), ft.replacedTensors, ft.tensors, ft.replacedBytes, m.Size())
		replaced += ft.replacedBytes
		total += m.Size()
	}
	fmt.Printf("new_version_bytes %d\nreplaced_bytes %d\n", total, replaced)
	return nil
}

func nextVersion(v string) (string, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return "", fmt.Errorf("latest version %q is not a number", v)
	}
	return strconv.Itoa(n + 1), nil
}

type fineTune struct {
	store *modelstore.Store
	old   *modelstore.Manifest
	frac  float64
	seed  uint64

	chosen                   map[string]bool
	tensors, replacedTensors int
	replacedBytes            int64
}

// choose picks round(frac*n) of the model's tensors, at least one.
func (ft *fineTune) choose(names []string) {
	ft.tensors = len(names)
	k := max(1, int(math.Round(ft.frac*float64(len(names)))))
	rng := tensorRNG(ft.seed, "finetune", ft.old.Name)
	ft.chosen = map[string]bool{}
	for _, i := range rng.Perm(len(names))[:min(k, len(names))] {
		ft.chosen[names[i]] = true
	}
}

func (ft *fineTune) fill(dir string) ([]modelstore.FileEntry, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	// Choose across the whole model, over all its shards.
	var names []string
	for _, f := range ft.old.Files {
		switch {
		case strings.HasSuffix(f.Path, ".safetensors"):
			ts, _, err := readSafetensors(ft.store.Path(ft.old, f.Path))
			if err != nil {
				return nil, nil, nil, err
			}
			for _, t := range ts {
				names = append(names, t.Name)
			}
		case strings.HasSuffix(f.Path, ".onnx"):
			m, err := decodeONNX(ft.store.Path(ft.old, f.Path))
			if err != nil {
				return nil, nil, nil, err
			}
			for _, t := range m.Graph.Initializers {
				names = append(names, t.Name)
			}
		}
	}
	ft.choose(names)

	var files []modelstore.FileEntry
	for _, f := range ft.old.Files {
		src, dst := ft.store.Path(ft.old, f.Path), filepath.Join(dir, f.Path)
		var e modelstore.FileEntry
		var err error
		switch {
		case strings.HasSuffix(f.Path, ".safetensors"):
			e, err = ft.safetensors(src, dst)
		case strings.HasSuffix(f.Path, ".onnx"):
			e, err = ft.onnx(src, dst)
		default:
			e, err = copyFile(src, dst)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		files = append(files, e)
	}
	return files, ft.old.Inputs, ft.old.Outputs, nil
}

func (ft *fineTune) safetensors(src, dst string) (modelstore.FileEntry, error) {
	ts, meta, err := readSafetensors(src)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	in, err := os.Open(src)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	defer in.Close()
	specs := make([]tensorSpec, len(ts))
	offsets := map[string]int64{}
	for i, t := range ts {
		specs[i] = t.tensorSpec
		offsets[t.Name] = t.offset
	}
	if meta == nil {
		meta = map[string]string{}
	}
	meta["fine_tuned_from"] = ft.old.Ref()
	meta["training_steps"] = "1000"
	return writeSafetensors(dst, specs, meta, func(t tensorSpec, w io.Writer) error {
		if ft.chosen[t.Name] {
			ft.replacedTensors++
			ft.replacedBytes += t.bytes()
			return writeWeights(w, tensorRNG(ft.seed, "finetune", ft.old.Name, t.Name), t.bytes())
		}
		_, err := io.Copy(w, io.NewSectionReader(in, offsets[t.Name], t.bytes()))
		return err
	})
}

func (ft *fineTune) onnx(src, dst string) (modelstore.FileEntry, error) {
	m, err := decodeONNX(src)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	for _, t := range m.Graph.Initializers {
		if ft.chosen[t.Name] {
			ft.replacedTensors++
			ft.replacedBytes += int64(len(t.RawData))
			t.RawData = weightBytes(tensorRNG(ft.seed, "finetune", ft.old.Name, t.Name), int64(len(t.RawData)))
		}
	}
	m.DocString = "fine-tuned from " + ft.old.Ref() + " for 1000 steps"
	return writeBytes(dst, onnx.Encode(m))
}

func decodeONNX(path string) (*onnx.Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := onnx.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("decode %s: no graph", path)
	}
	return m, nil
}

func copyFile(src, dst string) (modelstore.FileEntry, error) {
	in, err := os.Open(src)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	defer in.Close()
	hf, err := createHashed(dst)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	if _, err := io.Copy(hf, in); err != nil {
		hf.abort()
		return modelstore.FileEntry{}, err
	}
	return hf.commit()
}
