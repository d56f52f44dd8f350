package node

import (
	"context"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
)

func TestModelFilter(t *testing.T) {
	f, err := newModelFilter([]string{"iris:2", "iris:3", "resnet"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, version string
		want          bool
	}{
		{"iris", "2", true}, {"iris", "3", true}, {"iris", "1", false},
		{"resnet", "7", true}, {"other", "1", false},
	}
	for _, c := range cases {
		if got := f.allows(c.name, c.version); got != c.want {
			t.Errorf("allows(%s:%s) = %v, want %v", c.name, c.version, got, c.want)
		}
	}
	if !f.allowsModel("iris") || f.allowsModel("other") {
		t.Error("allowsModel")
	}
	none, err := newModelFilter(nil)
	if err != nil || !none.allows("any", "1") || !none.allowsModel("any") {
		t.Fatalf("the empty filter must allow everything: %v", err)
	}
	if _, err := newModelFilter([]string{"bad name:1"}); err == nil {
		t.Fatal("accepted an invalid reference")
	}
}

// TestNodeServesOnlyFilteredVersions: a node given Models loads and serves
// exactly those versions; the others are unknown to it.
func TestNodeServesOnlyFilteredVersions(t *testing.T) {
	n := newTestNode(t, Config{Models: []string{"iris:2"}}, func(st *modelstore.Store) {
		push(t, st, "iris", "1", "scale=1")
		push(t, st, "iris", "2", "scale=2")
		push(t, st, "other", "1", "scale=1")
	})
	var got []string
	for _, s := range n.srv.ModelStatus() {
		got = append(got, s.Name+":"+s.Version)
	}
	if strings.Join(got, ",") != "iris:2" {
		t.Fatalf("loaded %v, want only iris:2", got)
	}
	ctx := context.Background()
	if err := n.c.ModelReady(ctx, "iris", "2"); err != nil {
		t.Fatal(err)
	}
	if err := n.c.ModelReady(ctx, "iris", "1"); oip.StatusCode(err) != 404 {
		t.Fatalf("iris:1 on a node filtered to iris:2: %v, want 404", err)
	}
	if err := n.c.ModelReady(ctx, "other", ""); oip.StatusCode(err) != 404 {
		t.Fatalf("other: %v, want 404", err)
	}
}
