package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwark-ml/bulwark/internal/state"
)

// The document's type, as Kubernetes users write it.
const (
	APIVersion = "bulwark.dev/v1"
	Kind       = "Deployment"
)

// Defaults filled in by Parse, so a stored spec is complete and a document
// that spells a default out is "unchanged" against one that omits it.
const (
	DefaultReplicas             = 1
	DefaultMaxSurge             = 1
	DefaultReadyTimeout         = Duration(60 * time.Second)
	DefaultObserve              = Duration(30 * time.Second)
	DefaultMaxErrorRate         = 0.05
	DefaultRevisionHistoryLimit = 10
)

// Errors callers map to exit codes and HTTP statuses. Not-found and
// conflict are the state store's own, so its errors pass through wrapped.
var (
	ErrNotFound = state.ErrNotFound
	// ErrConflict: the resource version given is not the stored one (409).
	ErrConflict = state.ErrConflict
	// ErrInvalid: the document or request does not validate (400); every
	// *FieldError is one.
	ErrInvalid = errors.New("invalid")
	// ErrUnauthorized: the controller refused the bearer token (401).
	ErrUnauthorized = errors.New("unauthorized")
)

// FieldError is one invalid field. Line is its line in the document, 0 for
// a deployment built in code or read back from the store.
type FieldError struct {
	Line  int
	Field string // dotted path, e.g. spec.versions[1].weight
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// Is makes every FieldError an ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Deployment is the desired state of one model's serving: which versions
// get which share of traffic, how many replicas in which zones, how a
// change rolls out, and the gateway policy. Status is written by the
// reconciler and is not part of a revision.
type Deployment struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Status     *Status  `json:"status,omitempty"`

	// lines locates the fields of the document the deployment was parsed
	// from, so that checks done later (the model catalog) name lines too.
	lines map[string]int
	// policyNode is spec.policy as written, so policy errors name its lines.
	policyNode *yaml.Node
}

// Metadata identifies a deployment. Only Name and ResourceVersion are
// read on apply; the rest is output.
type Metadata struct {
	Name string `json:"name"`
	// ResourceVersion increases on every write (spec or status). Given on
	// apply, it must equal the stored one, else ErrConflict.
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
	// Revision is the number of the spec's current revision.
	Revision          int64     `json:"revision,omitempty"`
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
	UpdateTimestamp   time.Time `json:"updateTimestamp,omitzero"`
}

// Spec is the desired state; every change of it is a new revision.
type Spec struct {
	Model    string          `json:"model"`
	Versions []VersionWeight `json:"versions"`
	// Replicas per version.
	Replicas int      `json:"replicas"`
	Zones    []string `json:"zones,omitempty"` // replicas are spread over these
	Rollout  Rollout  `json:"rollout"`
	// Policy holds the gateway policy fields the deployment overrides, as
	// written (docs/gateway.md names them); EffectivePolicy merges them
	// over the gateway's defaults.
	Policy               map[string]any `json:"policy,omitempty"`
	RevisionHistoryLimit int            `json:"revisionHistoryLimit"`
}

// VersionWeight is one model version and its share of traffic in percent.
type VersionWeight struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// Rollout says how a new revision replaces the old one; the rollout engine
// reads it.
type Rollout struct {
	// MaxSurge is how many replicas above the desired count may run during
	// a rollout; 0 replaces replicas one at a time in place.
	MaxSurge     int      `json:"maxSurge"`
	ReadyTimeout Duration `json:"readyTimeout"` // a new replica not ready by then fails the rollout
	Observe      Duration `json:"observe"`      // how long a new version is watched before the next step
	MaxErrorRate float64  `json:"maxErrorRate"` // above this share of failed requests, roll back
	// MaxP99Latency above which the rollout rolls back; 0 does not check.
	MaxP99Latency Duration `json:"maxP99Latency"`
}

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string such as "500ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Phase is where a deployment stands, as the reconciler sees it.
type Phase string

// Phases a reconciler reports.
const (
	PhasePending     Phase = "Pending"     // nothing reconciled yet
	PhaseProgressing Phase = "Progressing" // a revision is being rolled out
	PhaseAvailable   Phase = "Available"   // the observed revision serves with all replicas ready
	PhaseDegraded    Phase = "Degraded"    // serving, with fewer ready replicas than desired
	PhaseRollingBack Phase = "RollingBack" // a rollout failed its checks and is being undone
)

// Status is the observed state, written by the reconciler through
// SetStatus; it never creates a revision.
type Status struct {
	Phase Phase `json:"phase"`
	// ObservedRevision is the revision the reconciler last acted on; it
	// lags metadata.revision while a change has not been picked up.
	ObservedRevision int64 `json:"observedRevision,omitempty"`
	// LastGoodRevision is the last revision that became Available, where
	// an automatic rollback goes.
	LastGoodRevision int64           `json:"lastGoodRevision,omitempty"`
	ReadyReplicas    int             `json:"readyReplicas"`
	DesiredReplicas  int             `json:"desiredReplicas"`
	Versions         []VersionStatus `json:"versions,omitempty"`
	Message          string          `json:"message,omitempty"`
	Conditions       []Condition     `json:"conditions,omitempty"`
	UpdateTimestamp  time.Time       `json:"updateTimestamp,omitzero"`
}

// VersionStatus is the readiness of one version's replicas.
type VersionStatus struct {
	Version string `json:"version"`
	Ready   int    `json:"ready"`
	Desired int    `json:"desired"`
}

// Condition is one aspect of the status, as in Kubernetes.
type Condition struct {
	Type               string    `json:"type"`   // e.g. Available, Progressing
	Status             string    `json:"status"` // True, False, Unknown
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
}

// Event is something that happened to a deployment, for people.
type Event = state.Event

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Done reports whether the deployment's current revision is fully rolled
// out and available.
func (d *Deployment) Done() bool {
	return d.Status != nil && d.Status.Phase == PhaseAvailable && d.Status.ObservedRevision == d.Metadata.Revision
}

// DesiredReplicas is the number of replicas the spec asks for, all
// versions together.
func (s *Spec) DesiredReplicas() int { return s.Replicas * len(s.Versions) }

// equal compares specs by their canonical JSON (map keys sorted, numbers
// as JSON numbers), so a spec read back from the store equals the one
// parsed from a file.
func (s *Spec) equal(o *Spec) bool {
	a, err1 := json.Marshal(s)
	b, err2 := json.Marshal(o)
	return err1 == nil && err2 == nil && string(a) == string(b)
}

// line is the line of a field in the parsed document, or 0.
func (d *Deployment) line(field string) int { return d.lines[field] }
