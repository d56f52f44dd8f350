package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// hashedFile writes a file through a buffer while hashing it, for the
// manifest entry; it lands under its name only once complete and synced.
type hashedFile struct {
	f    *os.File
	path string
	buf  *bufio.Writer
	sum  hashCounter
}

type hashCounter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func createHashed(path string) (*hashedFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".gendata-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	hf := &hashedFile{f: f, path: path, sum: hashCounter{h: sha256.New()}}
	hf.buf = bufio.NewWriterSize(io.MultiWriter(f, &hf.sum), 1<<20)
	return hf, nil
}

func (hf *hashedFile) Write(p []byte) (int, error) { return hf.buf.Write(p) }

// commit flushes, syncs and renames the file into place.
func (hf *hashedFile) commit() (modelstore.FileEntry, error) {
	err := hf.buf.Flush()
	if err == nil {
		err = hf.f.Sync()
	}
	if cerr := hf.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(hf.f.Name(), hf.path)
	}
	if err != nil {
		os.Remove(hf.f.Name())
		return modelstore.FileEntry{}, fmt.Errorf("write %s: %w", hf.path, err)
	}
	return modelstore.FileEntry{Path: filepath.Base(hf.path), Size: hf.sum.n, SHA256: hex.EncodeToString(hf.sum.h.Sum(nil))}, nil
}

func (hf *hashedFile) abort() {
	hf.f.Close()
	os.Remove(hf.f.Name())
}

type safetensorsEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// safetensorsHeader lays the tensors out in order, with the header keys in
// the same order and padded with spaces to a multiple of 8 as writers do.
func safetensorsHeader(ts []tensorSpec, meta map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(meta) > 0 {
		mb, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		b.WriteString(`"__metadata__":`)
		b.Write(mb)
	}
	var off int64
	for i, t := range ts {
		if i > 0 || len(meta) > 0 {
			b.WriteByte(',')
		}
		eb, err := json.Marshal(safetensorsEntry{DType: "F32", Shape: t.Shape, DataOffsets: [2]int64{off, off + t.bytes()}})
		if err != nil {
			return nil, err
		}
		nb, _ := json.Marshal(t.Name)
		b.Write(nb)
		b.WriteByte(':')
		b.Write(eb)
		off += t.bytes()
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// writeSafetensors writes a safetensors file whose tensor bytes come from
// data, one tensor at a time.
func writeSafetensors(path string, ts []tensorSpec, meta map[string]string, data func(tensorSpec, io.Writer) error) (modelstore.FileEntry, error) {
	header, err := safetensorsHeader(ts, meta)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	hf, err := createHashed(path)
	if err != nil {
		return modelstore.FileEntry{}, err
	}
	werr := binary.Write(hf, binary.LittleEndian, uint64(len(header)))
	if werr == nil {
		_, werr = hf.Write(header)
	}
	for _, t := range ts {
		if werr != nil {
			break
		}
		werr = data(t, hf)
	}
	if werr != nil {
		hf.abort()
		return modelstore.FileEntry{}, fmt.Errorf("write %s: %w", path, werr)
	}
	return hf.commit()
}

// storedTensor is a tensor of an existing safetensors file.
type storedTensor struct {
	tensorSpec
	offset int64 // absolute offset of its bytes in the file
}

// readSafetensors returns a file's tensors in the order of their bytes and
// its metadata. It trusts the file: gendata reads only what it wrote.
func readSafetensors(path string) ([]storedTensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var meta map[string]string
	var ts []storedTensor
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, nil, fmt.Errorf("parse %s metadata: %w", path, err)
			}
			continue
		}
		var e safetensorsEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, nil, fmt.Errorf("parse %s tensor %s: %w", path, name, err)
		}
		ts = append(ts, storedTensor{tensorSpec{name, e.Shape}, 8 + int64(n) + e.DataOffsets[0]})
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].offset < ts[j].offset })
	return ts, meta, nil
}
