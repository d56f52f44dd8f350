package repository

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The benchmarks in this file measure the alternatives behind the format's
// choices (docs/repository-format.md quotes their results).

var benchSizes = []int{4 << 10, 64 << 10, 1 << 20}

func benchData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// floatWeights returns n bytes of float32 values drawn from a normal
// distribution, like trained model weights.
func floatWeights(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n-n%4)
	for i := 0; i < len(b); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(r.NormFloat64()*0.02)))
	}
	return b
}

func BenchmarkHashChoice(b *testing.B) {
	for _, n := range benchSizes {
		data := benchData(n)
		b.Run(fmt.Sprintf("BLAKE3/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			start := cpuTime()
			for b.Loop() {
				blake3.Sum256(data)
			}
			reportCPU(b, start, int64(b.N)*int64(n))
		})
		b.Run(fmt.Sprintf("SHA256/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			start := cpuTime()
			for b.Loop() {
				sha256.Sum256(data)
			}
			reportCPU(b, start, int64(b.N)*int64(n))
		})
	}
}

func BenchmarkAEADChoice(b *testing.B) {
	key := make([]byte, 32)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	xc, _ := chacha20poly1305.NewX(key)
	for _, n := range benchSizes {
		data := benchData(n)
		for _, c := range []struct {
			name string
			aead cipher.AEAD
		}{{"AES256GCM", gcm}, {"XChaCha20Poly1305", xc}} {
			nonce := make([]byte, c.aead.NonceSize())
			out := make([]byte, 0, n+c.aead.Overhead())
			b.Run(fmt.Sprintf("%s/seal/%dKiB", c.name, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				start := cpuTime()
				for b.Loop() {
					c.aead.Seal(out[:0], nonce, data, nil)
				}
				reportCPU(b, start, int64(b.N)*int64(n))
			})
			sealed := c.aead.Seal(nil, nonce, data, nil)
			b.Run(fmt.Sprintf("%s/open/%dKiB", c.name, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				start := cpuTime()
				for b.Loop() {
					if _, err := c.aead.Open(out[:0], nonce, sealed, nil); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, start, int64(b.N)*int64(n))
			})
		}
	}
}

func BenchmarkCompressChoice(b *testing.B) {
	inputs := map[string][]byte{"floats": floatWeights(1 << 20), "random": benchData(1 << 20), "json": jsonLike(1 << 20)}
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1))
		for name, data := range inputs {
			out := enc.EncodeAll(data, nil)
			b.Run(fmt.Sprintf("%s/%s", lvl, name), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				start := cpuTime()
				for b.Loop() {
					out = enc.EncodeAll(data, out[:0])
				}
				reportCPU(b, start, int64(b.N)*int64(len(data)))
				b.ReportMetric(float64(len(data))/float64(len(out)), "ratio")
			})
		}
	}
}

func jsonLike(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"path":"models/resnet/%d/weights-%d.bin","mode":420,"size":%d},`, i%7, i, i*4096)
	}
	return b[:n]
}

func BenchmarkArgon2idChoice(b *testing.B) {
	salt := make([]byte, 16)
	for _, p := range []struct {
		time, memKiB uint32
		threads      uint8
	}{{2, 64 << 10, 2}, {4, 64 << 10, 2}, {6, 64 << 10, 2}, {8, 64 << 10, 2}, {10, 64 << 10, 2}, {12, 64 << 10, 2}, {3, 128 << 10, 2}} {
		b.Run(fmt.Sprintf("t=%d/m=%dMiB/p=%d", p.time, p.memKiB>>10, p.threads), func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				argon2.IDKey([]byte("password"), salt, p.time, p.memKiB, p.threads, 32)
			}
			// On an idle machine with p cores the wall time is about the
			// CPU time divided by p.
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
