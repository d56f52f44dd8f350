package control

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
)

func TestRoutingConfigIsAGatewayConfig(t *testing.T) {
	d := mustParse(t, edit(t, irisDoc, "hedge:", "hedge: {enabled: true, delay: 20ms}"))
	pol, err := d.EffectivePolicy()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := buildRouting([]routedDeployment{{
		Model: "iris", Policy: pol, Versions: d.Spec.Versions,
		Replicas: []routedReplica{
			{Address: "http://127.0.0.1:9001", Zone: "a", Version: "1", Ready: true},
			{Address: "http://127.0.0.1:9002", Zone: "b", Version: "1", Ready: false},
			{Address: "http://127.0.0.1:9003", Zone: "c", Version: "2", Ready: true},
			{Address: "http://127.0.0.1:9004", Zone: "a", Version: "9", Ready: true}, // not in the spec
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.ParseConfig(resp.Config)
	if err != nil {
		t.Fatalf("the gateway refuses the routing config: %v\n%s", err, resp.Config)
	}
	m := cfg.Models["iris"]
	want := []gateway.ReplicaConfig{{Address: "http://127.0.0.1:9001", Zone: "a"}, {Address: "http://127.0.0.1:9003", Zone: "c"}}
	if !reflect.DeepEqual(m.Replicas, want) {
		t.Fatalf("replicas %+v, want %+v", m.Replicas, want)
	}
	if !reflect.DeepEqual(m.Policy, pol) {
		t.Fatalf("policy after the round trip\n%+v\nwant\n%+v", m.Policy, pol)
	}
	if vs := resp.Versions["iris"]; len(vs) != 2 || vs[0].Weight != 90 || vs[1].Replicas[0] != "http://127.0.0.1:9003" {
		t.Fatalf("versions %+v", vs)
	}
}

func TestRoutingListsUnreadyReplicasRatherThanNone(t *testing.T) {
	resp, err := buildRouting([]routedDeployment{
		{Model: "iris", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("1", 100)},
			Replicas: []routedReplica{{Address: "http://127.0.0.1:9001", Version: "1"}}},
		{Model: "empty", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("1", 100)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.ParseConfig(resp.Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Models) != 1 || len(cfg.Models["iris"].Replicas) != 1 {
		t.Fatalf("models %+v", cfg.Models)
	}
}

func TestRoutingTableGenerationAndLongPoll(t *testing.T) {
	svc, _, _ := newTestService(t)
	rt := svc.Routing()
	rt.setGeneration(7)
	srv := httptest.NewServer(NewAPI(svc, "tok", nil))
	defer srv.Close()
	c := NewClient(srv.URL, "tok")
	ctx := context.Background()
	got, err := c.Routing(ctx, 0, 0)
	if err != nil || got.Generation != 7 {
		t.Fatalf("first poll: %+v %v", got, err)
	}
	// Nothing changes: the poll waits, then answers with the same generation.
	if got, err := c.Routing(ctx, 7, 50*time.Millisecond); err != nil || got.Generation != 7 {
		t.Fatalf("idle poll: %+v %v", got, err)
	}
	resp, _ := buildRouting([]routedDeployment{{Model: "iris", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("1", 100)},
		Replicas: []routedReplica{{Address: "http://127.0.0.1:9001", Version: "1", Ready: true}}}})
	done := make(chan *RoutingResponse, 1)
	go func() {
		r, err := c.Routing(ctx, 7, MaxWatchWait)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if gen, changed := rt.publish(resp, []ReplicaInfo{{Name: "iris-v1-1"}}); !changed || gen != 8 {
		t.Fatalf("publish: %d %v", gen, changed)
	}
	if _, changed := rt.publish(resp, nil); changed {
		t.Fatal("the same table counted as a change")
	}
	r := <-done
	if r == nil || r.Generation != 8 || !strings.Contains(string(r.Config), "127.0.0.1:9001") {
		t.Fatalf("long poll answer %+v", r)
	}
	if reps, err := c.Replicas(ctx); err != nil || len(reps) != 0 {
		t.Fatalf("replicas %+v %v (the last publish had none)", reps, err)
	}
	if _, err := NewClient(srv.URL, "wrong").Routing(ctx, 0, 0); err == nil {
		t.Fatal("routing without the token")
	}
}
