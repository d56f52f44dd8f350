package repository

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// Every decoder of stored bytes is fuzzed: whatever a damaged or hostile
// repository holds, decoding returns an error or a valid object, never a
// panic or an unbounded allocation.

func fuzzCrypter(f *testing.F) *crypter {
	mk := masterKey{Encrypt: bytes.Repeat([]byte{7}, keySize), MAC: bytes.Repeat([]byte{9}, keySize)}
	c, err := newCrypter(mk)
	if err != nil {
		f.Fatal(err)
	}
	return c
}

func FuzzDecodeConfig(f *testing.F) {
	c := fuzzCrypter(f)
	good, _ := encodeConfig(c, newConfig())
	f.Add(good)
	f.Add(good[:10])
	bumped := bytes.Clone(good)
	bumped[4]++
	f.Add(bumped)
	f.Add(c.sealObject(kindConfig, []byte(`{"id":"x","version":1}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkHeader(data, kindConfig) != nil {
			return
		}
		cfg, err := decodeConfig(c, data)
		if err == nil && cfg.validate() != nil {
			t.Fatalf("decoded an invalid config %+v", cfg)
		}
	})
}

func FuzzDecodeKeyFile(f *testing.F) {
	good, err := newKeyFile(newMasterKey(), "pw", testKDF, "host", "user")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"kdf":"argon2id","params":{"time":4294967295,"memory_kib":4294967295,"threads":255}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := decodeKeyFile(data)
		if err != nil {
			return
		}
		// Decoded parameters are always within bounds, so opening (which
		// runs the KDF) cannot be made to allocate without limit.
		if k.Params.validate() != nil || k.Params.MemoryKiB > maxKDFMemoryKiB {
			t.Fatalf("decoded out-of-bounds parameters %+v", k.Params)
		}
	})
}

func samplePacks() []*packRecord {
	id1, id2 := Hash([]byte("a")), Hash([]byte("b"))
	return []*packRecord{{
		ID: Hash([]byte("pack")), Size: 1000,
		Blobs: []blobEntry{
			{Type: DataBlob, ID: id1, Offset: 0, Length: 128, RawLength: 100},
			{Type: TreeBlob, Flags: flagCompressed, ID: id2, Offset: 128, Length: 60, RawLength: 300},
		},
	}}
}

func FuzzDecodeIndex(f *testing.F) {
	c := fuzzCrypter(f)
	plain := encodeIndex(samplePacks())
	f.Add(plain)
	f.Add(plain[:30])
	f.Add(encodeIndex(nil))
	f.Add(c.sealObject(kindIndex, plain))
	f.Fuzz(func(t *testing.T, data []byte) {
		if packs, err := decodeIndex(data); err == nil {
			// A decodable index is canonical: it encodes back to itself.
			if !bytes.Equal(encodeIndex(packs), data) {
				t.Fatal("index does not re-encode to the same bytes")
			}
		}
		if p, err := c.openObject(kindIndex, data); err == nil {
			decodeIndex(p)
		}
	})
}

func FuzzDecodeTrailer(f *testing.F) {
	entries := samplePacks()[0].Blobs
	f.Add(encodeTrailer(entries), int64(188))
	f.Add(encodeTrailer(nil), int64(0))
	f.Add([]byte{255, 255, 255, 255}, int64(1<<40))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		got, err := decodeTrailer(data, size)
		if err != nil {
			return
		}
		var sum int64
		for _, e := range got {
			if e.validate() != nil || int64(e.Offset) != sum {
				t.Fatalf("decoded an invalid entry %+v", e)
			}
			sum += int64(e.Length)
		}
		if sum != size {
			t.Fatalf("entries cover %d of %d bytes", sum, size)
		}
	})
}

func FuzzParsePackTail(f *testing.F) {
	c := fuzzCrypter(f)
	var p packer
	for i := range 3 {
		data := randomBlob(uint64(i), 200)
		id := Hash(data)
		p.addSealed(blobEntry{Type: DataBlob, ID: id, RawLength: 200}, func(dst []byte) []byte { return c.sealBlob(dst, DataBlob, 0, id, data) }, 1<<10)
	}
	pack := c.sealTrailer(p.buf, p.entries)
	f.Add(pack)
	f.Add(pack[len(pack)-100:])
	f.Add([]byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := c.parsePackTail(data, int64(len(data)))
		if err == nil && len(entries) > len(data) {
			t.Fatal("more entries than bytes")
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	parent := Hash([]byte("parent"))
	s := &Snapshot{Time: time.Unix(1700000000, 0).UTC(), Host: "h", Tags: []string{"x"}, Parent: &parent, Kind: "hot",
		SiteVersion: "v1", Tree: Hash([]byte("tree")), Meta: map[string]string{"k": "v"}, Summary: &Summary{Files: 1}}
	good, _ := json.Marshal(s)
	f.Add(good)
	f.Add([]byte(`{"tree":"00"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeSnapshot(data)
		if err == nil && got.Tree.IsZero() {
			t.Fatal("decoded a snapshot without a tree")
		}
	})
}

func FuzzDecodeTree(f *testing.F) {
	h := Hash([]byte("content"))
	good, _ := encodeTree(&Tree{Nodes: []Node{
		{Path: "a", Type: NodeDir, Mode: 0o755},
		{Path: "a/f", Type: NodeFile, Mode: 0o644, Size: 7, Hash: &h, Content: []ID{h}},
		{Path: "a/l", Type: NodeSymlink, Target: "f"},
	}})
	f.Add(good)
	f.Add([]byte(`{"nodes":[{"path":"../x","type":"file"}]}`))
	f.Add([]byte(`{"nodes":[{"path":"l","type":"symlink","target":"/etc"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := decodeTree(data)
		if err != nil {
			return
		}
		for _, n := range tree.Nodes {
			if validatePath(n.Path) != nil {
				t.Fatalf("decoded a hostile path %q", n.Path)
			}
		}
	})
}

func FuzzDecodeLock(f *testing.F) {
	c := fuzzCrypter(f)
	plain, _ := json.Marshal(lockRecord{Time: time.Now(), Host: "h", PID: 1, StaleAfter: 30000})
	f.Add(c.sealObject(kindLock, plain))
	f.Add(c.sealObject(kindLock, []byte(`{"stale_after_ms":-5}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := decodeLock(c, data)
		if err == nil && (rec.lease() < minLease || rec.lease() > maxLease) {
			t.Fatalf("lease %s out of bounds", rec.lease())
		}
	})
}

func FuzzDecompress(f *testing.F) {
	compressed, flags := compress(bytes.Repeat([]byte("abc"), 1000), nil)
	if flags != flagCompressed {
		f.Fatal("seed did not compress")
	}
	f.Add(compressed, uint32(3000))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}, uint32(10))
	f.Fuzz(func(t *testing.T, payload []byte, rawLength uint32) {
		out, err := decompress(payload, flagCompressed, rawLength)
		if err == nil && uint32(len(out)) != rawLength {
			t.Fatalf("decompressed %d bytes, want %d", len(out), rawLength)
		}
	})
}
