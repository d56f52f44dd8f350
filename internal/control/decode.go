package control

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeDeployment reads the fields of one document into a Deployment with
// the defaults filled in. It checks names and types; the rules between
// values are Validate's.
func decodeDeployment(root *yaml.Node) (*Deployment, error) {
	p := &parser{lines: map[string]int{}}
	d := &Deployment{lines: p.lines}
	// status and the output-only metadata are accepted and ignored, so the
	// JSON that get prints can be applied again as it is.
	top := p.mapping(root, "", "apiVersion", "kind", "metadata", "spec", "status")
	if len(p.errs) > 0 && len(top) == 0 {
		return nil, p.err()
	}
	p.required(top, "", deref(root).Line, "apiVersion", "kind", "metadata", "spec")
	if n := top["apiVersion"]; n != nil {
		if v, ok := p.scalar(n, "apiVersion"); ok && v != APIVersion {
			p.fail(n.Line, "apiVersion", "must be %s, got %q", APIVersion, v)
		}
		d.APIVersion = APIVersion
	}
	if n := top["kind"]; n != nil {
		if v, ok := p.scalar(n, "kind"); ok && v != Kind {
			p.fail(n.Line, "kind", "must be %s, got %q", Kind, v)
		}
		d.Kind = Kind
	}
	p.metadata(d, top["metadata"])
	d.policyNode = p.spec(&d.Spec, top["spec"])
	if len(p.errs) > 0 {
		// Also report the rules Validate finds broken, except on fields
		// already reported (a missing model is not also an invalid name).
		if verr := d.Validate(); verr != nil {
			structural := len(p.errs)
			for _, e := range verr.(interface{ Unwrap() []error }).Unwrap() {
				if !reported(p.errs[:structural], e.(*FieldError).Field) {
					p.errs = append(p.errs, e)
				}
			}
		}
		return nil, p.err()
	}
	return d, nil
}

// reported tells whether field, or a field that contains it, has an error.
func reported(errs []error, field string) bool {
	for _, e := range errs {
		f := e.(*FieldError).Field
		if f == field || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return true
		}
	}
	return false
}

// err joins the problems found, in the order of their lines.
func (p *parser) err() error {
	slices.SortStableFunc(p.errs, func(a, b error) int {
		return cmp.Compare(a.(*FieldError).Line, b.(*FieldError).Line)
	})
	return errors.Join(p.errs...)
}

var specFields = []string{"model", "versions", "replicas", "zones", "rollout", "policy", "revisionHistoryLimit"}

// required reports the fields of a mapping that are missing, on the line
// of the mapping itself.
func (p *parser) required(m map[string]*yaml.Node, field string, line int, names ...string) {
	if l := p.lines[field]; l > 0 {
		line = l
	}
	for _, name := range names {
		if m[name] == nil {
			p.fail(line, join(field, name), "required")
		}
	}
}

func (p *parser) metadata(d *Deployment, n *yaml.Node) {
	if n == nil {
		return
	}
	m := p.mapping(n, "metadata", "name", "resourceVersion", "revision", "creationTimestamp", "updateTimestamp")
	p.required(m, "metadata", n.Line, "name")
	if v := m["name"]; v != nil {
		d.Metadata.Name, _ = p.scalar(v, "metadata.name")
	}
	if v := m["resourceVersion"]; v != nil {
		// Kubernetes writes resource versions as strings; take either.
		if s := deref(v); s.Kind == yaml.ScalarNode && s.ShortTag() == "!!str" {
			if rv, err := strconv.ParseInt(s.Value, 10, 64); err == nil {
				d.Metadata.ResourceVersion = rv
			} else {
				p.fail(v.Line, "metadata.resourceVersion", "must be an integer, got %q", s.Value)
			}
		} else if rv, ok := p.integer(v, "metadata.resourceVersion"); ok {
			d.Metadata.ResourceVersion = rv
		}
	}
}

// spec reads the spec and returns its policy node, which the gateway's
// rules check later with its lines.
func (p *parser) spec(s *Spec, n *yaml.Node) *yaml.Node {
	s.Replicas = DefaultReplicas
	s.RevisionHistoryLimit = DefaultRevisionHistoryLimit
	s.Rollout = Rollout{MaxSurge: DefaultMaxSurge, ReadyTimeout: DefaultReadyTimeout, Observe: DefaultObserve, MaxErrorRate: DefaultMaxErrorRate}
	if n == nil {
		return nil
	}
	m := p.mapping(n, "spec", specFields...)
	p.required(m, "spec", n.Line, "model", "versions")
	if v := m["model"]; v != nil {
		s.Model, _ = p.scalar(v, "spec.model")
	}
	for i, item := range p.list(m["versions"], "spec.versions") {
		field := "spec.versions[" + strconv.Itoa(i) + "]"
		vm := p.mapping(item, field, "version", "weight")
		p.required(vm, field, item.Line, "version")
		vw := VersionWeight{Weight: -1} // -1: not given; Validate decides
		if v := vm["version"]; v != nil {
			vw.Version, _ = p.scalar(v, field+".version")
		}
		if v := vm["weight"]; v != nil {
			if w, ok := p.integer(v, field+".weight"); ok {
				vw.Weight = int(w)
			}
		}
		s.Versions = append(s.Versions, vw)
	}
	// One version needs no weight: it gets all the traffic.
	if len(s.Versions) == 1 && s.Versions[0].Weight == -1 {
		s.Versions[0].Weight = 100
	}
	if v := m["replicas"]; v != nil {
		if r, ok := p.integer(v, "spec.replicas"); ok {
			s.Replicas = int(r)
		}
	}
	for i, z := range p.list(m["zones"], "spec.zones") {
		zone, _ := p.scalar(z, "spec.zones["+strconv.Itoa(i)+"]")
		s.Zones = append(s.Zones, zone)
	}
	if v := m["revisionHistoryLimit"]; v != nil {
		if r, ok := p.integer(v, "spec.revisionHistoryLimit"); ok {
			s.RevisionHistoryLimit = int(r)
		}
	}
	p.rollout(&s.Rollout, m["rollout"])
	v := m["policy"]
	if v == nil || deref(v).ShortTag() == "!!null" {
		return nil
	}
	if err := deref(v).Decode(&s.Policy); err != nil || s.Policy == nil {
		p.fail(v.Line, "spec.policy", "must be a mapping of gateway policy fields")
		return nil
	}
	return v
}

func (p *parser) rollout(r *Rollout, n *yaml.Node) {
	if n == nil {
		return
	}
	m := p.mapping(n, "spec.rollout", "maxSurge", "readyTimeout", "observe", "maxErrorRate", "maxP99Latency")
	if v := m["maxSurge"]; v != nil {
		if x, ok := p.integer(v, "spec.rollout.maxSurge"); ok {
			r.MaxSurge = int(x)
		}
	}
	durations := []struct {
		name string
		dst  *Duration
	}{{"readyTimeout", &r.ReadyTimeout}, {"observe", &r.Observe}, {"maxP99Latency", &r.MaxP99Latency}}
	for _, d := range durations {
		if v := m[d.name]; v != nil {
			if x, ok := p.duration(v, "spec.rollout."+d.name); ok {
				*d.dst = x
			}
		}
	}
	if v := m["maxErrorRate"]; v != nil {
		if x, ok := p.number(v, "spec.rollout.maxErrorRate"); ok {
			r.MaxErrorRate = x
		}
	}
}
