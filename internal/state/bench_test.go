package state

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkBoltApply is one Apply of a 2 KB record with a new revision and
// an event, fsynced: the floor of the controller's apply latency.
func BenchmarkBoltApply(b *testing.B) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(b.TempDir(), "state.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte("x"), 2048)
	var rv int64
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Apply(ctx, Change{Record: Record{Name: "web", Revision: rv + 1, Data: data}, Expect: rv,
			Revision: &Revision{Number: rv + 1, Data: data}, KeepRevisions: 10,
			Events: []Event{{Type: "Normal", Reason: "Applied"}}})
		if err != nil {
			b.Fatal(err)
		}
		rv = r.ResourceVersion
	}
}

// BenchmarkBoltOpen10MB is OpenBolt (with its full read-only validation:
// header, every checksum, bbolt's page check) of a 10 MB state file.
func BenchmarkBoltOpen10MB(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "state.db")
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("y"), 7<<10)
	for i := 0; i < 250; i++ {
		name := fmt.Sprintf("deployment-%03d", i)
		for n := int64(1); n <= 2; n++ {
			_, err := s.Apply(ctx, Change{Record: Record{Name: name, Revision: n, Data: data}, Expect: n - 1,
				Revision: &Revision{Number: n, Data: data}, Events: []Event{{Reason: "Applied"}}})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	s.Close()
	info, _ := os.Stat(path)
	for b.Loop() {
		s, err := OpenBolt(path, BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(info.Size())/(1<<20), "MB")
}
