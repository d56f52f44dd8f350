package control

import (
	"context"
	"errors"
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
	want := []gateway.ReplicaConfig{{Address: "http://127.0.0.1:9001", Zone: "a", Version: "1"}, {Address: "http://127.0.0.1:9003", Zone: "c", Version: "2"}}
	if !reflect.DeepEqual(m.Replicas, want) {
		t.Fatalf("replicas %+v, want %+v", m.Replicas, want)
	}
	if wantV := []gateway.VersionConfig{{Version: "1", Weight: 90}, {Version: "2", Weight: 10}}; !reflect.DeepEqual(m.Versions, wantV) {
		t.Fatalf("versions %+v, want %+v: the gateway splits by these", m.Versions, wantV)
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

func TestRoutingDuringARollingUpdateKeepsOldReplicas(t *testing.T) {
	// Version 1 is being replaced by version 2: two old replicas still
	// serve, one new one is ready, one is starting.
	resp, err := buildRouting([]routedDeployment{{
		Model: "iris", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("2", 100)},
		Replicas: []routedReplica{
			{Address: "http://127.0.0.1:9001", Version: "1", Ready: true},
			{Address: "http://127.0.0.1:9002", Version: "1", Ready: true},
			{Address: "http://127.0.0.1:9003", Version: "2", Ready: true},
			{Address: "http://127.0.0.1:9004", Version: "2", Ready: false},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.ParseConfig(resp.Config)
	if err != nil {
		t.Fatalf("%v\n%s", err, resp.Config)
	}
	m := cfg.Models["iris"]
	var addrs []string
	for _, r := range m.Replicas {
		addrs = append(addrs, r.Version+"@"+r.Address)
	}
	if want := []string{"1@http://127.0.0.1:9001", "1@http://127.0.0.1:9002", "2@http://127.0.0.1:9003"}; !reflect.DeepEqual(addrs, want) {
		t.Fatalf("routed %v, want the ready replicas of both versions %v", addrs, want)
	}
	if len(m.Versions) != 0 {
		t.Fatalf("weights %+v during a rolling update: each ready replica should take an equal part", m.Versions)
	}
	if vs := resp.Versions["iris"]; len(vs) != 2 || vs[1].Version != "1" || vs[1].Weight != 0 || len(vs[1].Replicas) != 2 {
		t.Fatalf("versions %+v", vs)
	}

	// Before any new replica is ready, the old ones take everything; a
	// version that never gets ready is never routed while others are.
	resp, _ = buildRouting([]routedDeployment{{
		Model: "iris", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("3", 100)},
		Replicas: []routedReplica{
			{Address: "http://127.0.0.1:9001", Version: "2", Ready: true},
			{Address: "http://127.0.0.1:9005", Version: "3", Ready: false},
		},
	}})
	cfg, _ = gateway.ParseConfig(resp.Config)
	if reps := cfg.Models["iris"].Replicas; len(reps) != 1 || reps[0].Version != "2" {
		t.Fatalf("routed %+v, want only the ready old replica", reps)
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
	// Before the reconciler's first table there is none to give: 503, not
	// an empty table that would make a gateway drop every model.
	_, err := c.Routing(ctx, 0, 20*time.Millisecond)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 || !strings.Contains(ae.Message, "not built yet") {
		t.Fatalf("poll before the first table: %v", err)
	}
	resp, _ := buildRouting([]routedDeployment{{Model: "iris", Policy: gateway.DefaultPolicy(), Versions: []VersionWeight{vw("1", 100)},
		Replicas: []routedReplica{{Address: "http://127.0.0.1:9001", Version: "1", Ready: true}}}})
	first := make(chan *RoutingResponse, 1)
	go func() {
		r, err := c.Routing(ctx, 0, MaxWatchWait)
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	if gen, changed := rt.publish(resp, []ReplicaInfo{{Name: "iris-v1-1"}}); !changed || gen != 8 {
		t.Fatalf("publish: %d %v", gen, changed)
	}
	if r := <-first; r == nil || r.Generation != 8 || !strings.Contains(string(r.Config), "127.0.0.1:9001") {
		t.Fatalf("poll waiting for the first table: %+v", r)
	}
	if _, changed := rt.publish(resp, nil); changed {
		t.Fatal("the same table counted as a change")
	}
	// Nothing changes: the poll waits, then answers with the same generation.
	if got, err := c.Routing(ctx, 8, 50*time.Millisecond); err != nil || got.Generation != 8 {
		t.Fatalf("idle poll: %+v %v", got, err)
	}
	// The gateway's view of the same endpoint.
	tab, err := c.NextTable(ctx, 0)
	if err != nil || tab.Generation != 8 || !strings.Contains(string(tab.Models), "127.0.0.1:9001") {
		t.Fatalf("NextTable: %+v %v", tab, err)
	}
	if reps, err := c.Replicas(ctx); err != nil || len(reps) != 0 {
		t.Fatalf("replicas %+v %v (the last publish had none)", reps, err)
	}
	if _, err := NewClient(srv.URL, "wrong").Routing(ctx, 0, 0); err == nil {
		t.Fatal("routing without the token")
	}
}
