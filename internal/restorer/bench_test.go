package restorer

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// BenchmarkRestore restores a 256 MiB file of float32 weights (normally
// distributed) cut into 1 MiB blobs from a local repository, every file
// synced: throughput in MB/s.
//
//	go test -run '^$' -bench Restore -benchtime 3x ./internal/restorer
func BenchmarkRestore(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	be, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	repo, err := repository.InitWithOptions(ctx, be, "pw", repository.Options{KDF: cheapKDF})
	if err != nil {
		b.Fatal(err)
	}
	const size, blob = 256 << 20, 1 << 20
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, blob)
	node := repository.Node{Path: "models/m/1/model.bin", Type: repository.NodeFile, Mode: 0o644, Size: size}
	h := repository.NewHasher()
	for off := 0; off < size; off += blob {
		for i := 0; i < blob; i += 4 {
			bits := math.Float32bits(float32(r.NormFloat64() * 0.02))
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		}
		id, _, err := repo.SaveBlob(ctx, repository.DataBlob, buf)
		if err != nil {
			b.Fatal(err)
		}
		node.Content = append(node.Content, id)
		h.Write(buf)
	}
	var sum repository.ID
	copy(sum[:], h.Sum(nil))
	node.Hash = &sum
	tree := &repository.Tree{Nodes: []repository.Node{
		{Path: "models", Type: repository.NodeDir, Mode: 0o755},
		{Path: "models/m", Type: repository.NodeDir, Mode: 0o755},
		{Path: "models/m/1", Type: repository.NodeDir, Mode: 0o755},
		node,
	}}
	treeID, err := repo.SaveTree(ctx, tree)
	if err != nil {
		b.Fatal(err)
	}
	if err := repo.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	snap := &repository.Snapshot{Host: "bench", Kind: "cold", Tree: treeID}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := filepath.Join(dir, "out")
		if _, err := Restore(ctx, repo, snap, Options{Target: target}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(target)
		b.StartTimer()
	}
}
