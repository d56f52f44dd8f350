package plan

import (
	"fmt"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/control"
)

// Topology is the shape of a deployment that availability depends on:
// where its replicas run and how many must be up for it to serve.
type Topology struct {
	Deployment string         `json:"deployment,omitempty"`
	Zones      []ZoneReplicas `json:"zones"` // in the deployment's order
	// K is how many replicas must be up (the deployment is "k of n").
	K int `json:"k"`
	// KReason says where K came from, for people.
	KReason string `json:"kReason"`
}

// N is the number of replicas.
func (t Topology) N() int {
	n := 0
	for _, z := range t.Zones {
		n += z.Replicas
	}
	return n
}

// Describe is the topology in a line: "3 replicas in zones a (1), b (1), c (1)".
func (t Topology) Describe() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%d replica%s", t.N(), plural(t.N()))
	if len(t.Zones) == 1 && t.Zones[0].Zone == "" {
		s.WriteString(" in one zone")
		return s.String()
	}
	parts := make([]string, len(t.Zones))
	for i, z := range t.Zones {
		parts[i] = fmt.Sprintf("%s (%d)", z.Zone, z.Replicas)
	}
	fmt.Fprintf(&s, " in zone%s %s", plural(len(t.Zones)), strings.Join(parts, ", "))
	return s.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// TopologyOf reads a parsed deployment the way the controller runs it and
// the gateway routes it. Every version that gets traffic has
// spec.replicas replicas, replica i in zone i mod len(zones), and the
// model serves while any of them can: the gateway routes a version's
// share to the others when it has no replica available. A
// deployment without zones runs in one (unnamed) zone, which a zone
// outage takes down whole. k is 1, or with voting on (spec.policy.vote)
// the majority the gateway needs to answer: replicas/2 + 1.
func TopologyOf(d *control.Deployment) (Topology, error) {
	pol, err := d.EffectivePolicy()
	if err != nil {
		return Topology{}, fmt.Errorf("deployment %s: policy: %w", d.Metadata.Name, err)
	}
	t := Topology{Deployment: d.Metadata.Name, K: 1, KReason: "one replica up serves (no voting)"}
	if v := pol.Vote; v.Enabled {
		t.K = v.Replicas/2 + 1
		t.KReason = fmt.Sprintf("voting (spec.policy.vote.replicas %d) needs a majority of %d up", v.Replicas, t.K)
	}
	zones := d.Spec.Zones
	if len(zones) == 0 {
		zones = []string{""}
	}
	count := make([]int, len(zones))
	for _, v := range d.Spec.Versions {
		if v.Weight == 0 {
			continue // gets no traffic: the gateway does not route to it
		}
		for i := range d.Spec.Replicas {
			count[i%len(zones)]++
		}
	}
	for i, z := range zones {
		if count[i] > 0 {
			t.Zones = append(t.Zones, ZoneReplicas{Zone: z, Replicas: count[i]})
		}
	}
	return t, nil
}

// validate checks the topology against its k.
func (t Topology) validate() error {
	n := t.N()
	for _, z := range t.Zones {
		if z.Replicas < 0 {
			return &FieldError{Field: "topology", Msg: fmt.Sprintf("zone %q has %d replicas", z.Zone, z.Replicas)}
		}
	}
	switch {
	case n < 1:
		return &FieldError{Field: "topology", Msg: "the deployment has no replicas"}
	case t.K < 1:
		return &FieldError{Field: "serving.k", Msg: fmt.Sprintf("must be at least 1, got %d", t.K)}
	case t.K > n:
		return &FieldError{Field: "serving.k", Msg: fmt.Sprintf("%d replicas must be up but the deployment has %d (%s): it could never serve", t.K, n, t.KReason)}
	}
	return nil
}
