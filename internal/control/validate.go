package control

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// ModelCatalog is what the controller needs of the model store: a model's
// versions, oldest first, and an error wrapping modelstore.ErrNotFound for
// a model it does not have.
type ModelCatalog interface {
	Versions(name string) ([]string, error)
}

var _ ModelCatalog = (*modelstore.Store)(nil)

// Validate checks every rule that needs no model store; the error joins
// one *FieldError per problem, with lines when d was parsed from a file.
func (d *Deployment) Validate() error {
	v := &parser{lines: map[string]int{}}
	at := func(field, format string, args ...any) { v.fail(d.lineOf(field), field, format, args...) }
	if d.APIVersion != APIVersion {
		at("apiVersion", "must be %s, got %q", APIVersion, d.APIVersion)
	}
	if d.Kind != Kind {
		at("kind", "must be %s, got %q", Kind, d.Kind)
	}
	if err := modelstore.ValidateName("deployment name", d.Metadata.Name); err != nil {
		at("metadata.name", "%v", err)
	}
	if d.Metadata.ResourceVersion < 0 {
		at("metadata.resourceVersion", "must not be negative, got %d", d.Metadata.ResourceVersion)
	}
	s := &d.Spec
	if err := modelstore.ValidateName("model name", s.Model); err != nil {
		at("spec.model", "%v", err)
	}
	d.validateVersions(at)
	if s.Replicas < 1 {
		at("spec.replicas", "must be at least 1, got %d", s.Replicas)
	}
	seen := map[string]int{}
	for i, z := range s.Zones {
		f := "spec.zones[" + strconv.Itoa(i) + "]"
		if err := modelstore.ValidateName("zone", z); err != nil {
			at(f, "%v", err)
		} else if j, dup := seen[z]; dup {
			at(f, "zone %q is listed twice (also zones[%d])", z, j)
		}
		seen[z] = i
	}
	r := s.Rollout
	if r.MaxSurge < 0 {
		at("spec.rollout.maxSurge", "must not be negative, got %d", r.MaxSurge)
	}
	if r.ReadyTimeout <= 0 {
		at("spec.rollout.readyTimeout", "must be a positive duration, got %v", r.ReadyTimeout)
	}
	if r.Observe < 0 {
		at("spec.rollout.observe", "must not be negative, got %v", r.Observe)
	}
	if r.MaxP99Latency < 0 {
		at("spec.rollout.maxP99Latency", "must not be negative, got %v (0 turns the check off)", r.MaxP99Latency)
	}
	if !(r.MaxErrorRate >= 0 && r.MaxErrorRate <= 1) {
		at("spec.rollout.maxErrorRate", "must be between 0 and 1, got %v", r.MaxErrorRate)
	}
	if s.RevisionHistoryLimit < 0 {
		at("spec.revisionHistoryLimit", "must not be negative, got %d", s.RevisionHistoryLimit)
	}
	if _, err := d.EffectivePolicy(); err != nil {
		v.errs = append(v.errs, policyFieldErrors(err)...)
	}
	if len(v.errs) > 0 {
		return v.err()
	}
	return nil
}

func (d *Deployment) validateVersions(at func(field, format string, args ...any)) {
	vs := d.Spec.Versions
	if len(vs) == 0 {
		at("spec.versions", "at least one version is required")
		return
	}
	sum, weights := 0, make([]string, 0, len(vs))
	seen := map[string]int{}
	for i, vw := range vs {
		f := "spec.versions[" + strconv.Itoa(i) + "]"
		if err := modelstore.ValidateName("version", vw.Version); err != nil {
			at(f+".version", "%v", err)
		} else if j, dup := seen[vw.Version]; dup {
			at(f+".version", "version %q is listed twice (also versions[%d])", vw.Version, j)
		}
		seen[vw.Version] = i
		switch {
		case vw.Weight == -1:
			at(f+".weight", "required when there are several versions (weights must sum to 100)")
		case vw.Weight < 0 || vw.Weight > 100:
			at(f+".weight", "must be between 0 and 100, got %d", vw.Weight)
		default:
			sum += vw.Weight
			weights = append(weights, strconv.Itoa(vw.Weight))
		}
	}
	if len(weights) == len(vs) && sum != 100 {
		at("spec.versions", "weights must sum to 100, got %d (%s)", sum, strings.Join(weights, " + "))
	}
}

// lineOf is the line of field in the parsed document, or of its nearest
// ancestor there (a defaulted field has no line of its own); 0 if none.
func (d *Deployment) lineOf(field string) int {
	for field != "" {
		if l := d.line(field); l > 0 {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0
}

// EffectivePolicy is the gateway policy for this deployment's model: the
// gateway's defaults with spec.policy's fields applied, validated with the
// gateway's own rules.
func (d *Deployment) EffectivePolicy() (gateway.Policy, error) {
	n := d.policyNode
	if n == nil && len(d.Spec.Policy) > 0 {
		n = new(yaml.Node)
		if err := n.Encode(d.Spec.Policy); err != nil {
			return gateway.Policy{}, &FieldError{Field: "spec.policy", Msg: err.Error()}
		}
	}
	return gateway.DecodePolicy(n, gateway.DefaultPolicy(), "spec.policy")
}

// policyFieldErrors turns the gateway's *ConfigErrors into *FieldErrors.
func policyFieldErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, policyFieldErrors(e)...)
		}
		return out
	}
	var ce *gateway.ConfigError
	if errors.As(err, &ce) {
		return []error{&FieldError{Line: ce.Line, Field: ce.Field, Msg: ce.Msg}}
	}
	return []error{&FieldError{Field: "spec.policy", Msg: err.Error()}}
}

// checkCatalog checks the model and its versions against the model store.
func (d *Deployment) checkCatalog(cat ModelCatalog) error {
	have, err := cat.Versions(d.Spec.Model)
	if errors.Is(err, modelstore.ErrNotFound) {
		return &FieldError{Line: d.lineOf("spec.model"), Field: "spec.model",
			Msg: fmt.Sprintf("model %q is not in the model store (push it first)", d.Spec.Model)}
	}
	if err != nil {
		return fmt.Errorf("model store: %w", err)
	}
	var errs []error
	for i, vw := range d.Spec.Versions {
		if !slices.Contains(have, vw.Version) {
			f := "spec.versions[" + strconv.Itoa(i) + "].version"
			errs = append(errs, &FieldError{Line: d.lineOf(f), Field: f,
				Msg: fmt.Sprintf("model %s has no version %q (it has %s)", d.Spec.Model, vw.Version, strings.Join(have, ", "))})
		}
	}
	return errors.Join(errs...)
}
