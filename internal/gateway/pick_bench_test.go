package gateway

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPick measures the balancer alone: claim a replica for a try
// and release it, as every request does, without HTTP around it.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{3, 12} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			cfg := &Config{Defaults: DefaultPolicy(), Models: map[string]ModelConfig{}}
			mc := ModelConfig{Policy: DefaultPolicy()}
			for i := range n {
				mc.Replicas = append(mc.Replicas, ReplicaConfig{Address: fmt.Sprintf("http://127.0.0.1:%d", 9000+i)})
			}
			cfg.Models["iris"] = mc
			benchPick(b, cfg)
		})
	}
	// A canary: two versions split 90/10, the balancer draws a version
	// first.
	b.Run("replicas=6/versions=2", func(b *testing.B) {
		mc := ModelConfig{Policy: DefaultPolicy(), Versions: []VersionConfig{{"1", 90}, {"2", 10}}}
		for i := range 6 {
			mc.Replicas = append(mc.Replicas, ReplicaConfig{Address: fmt.Sprintf("http://127.0.0.1:%d", 9000+i), Version: []string{"1", "2"}[i%2]})
		}
		benchPick(b, &Config{Defaults: DefaultPolicy(), Models: map[string]ModelConfig{"iris": mc}})
	})
}

func benchPick(b *testing.B, cfg *Config) {
	g, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	m := g.table().models["iris"]
	p := m.policy.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now := time.Now()
		r, trial := m.acquire(now, p, "", "", nil)
		if r == nil {
			b.Fatal("no replica")
		}
		r.end(now, p, outcomeOK, time.Millisecond, 0, trial, "")
	}
}
