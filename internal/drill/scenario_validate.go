package drill

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// Limits of the values a scenario may hold. They keep a typo (a phase of
// 30h, a load of a million requests a second) from becoming a drill that
// runs for a day or floods the machine.
const (
	maxPhaseDuration  = 24 * time.Hour
	maxLoadRate       = 100000
	maxLoadTimeout    = 10 * time.Minute
	maxSiteReplicas   = 100
	maxLoadWorkers    = 10000
	maxNameLength     = 100
	maxBackupInterval = 24 * time.Hour
)

// faultFieldsFor lists, for each fault type, the fields besides type that
// apply to it; any other field given is an error.
var faultFieldsFor = map[string][]string{
	FaultReplicaKill:    {"replicas"},
	FaultReplicaStop:    {"replicas", "pause"},
	FaultReplicaSlow:    {"replicas", "rate", "latency"},
	FaultReplicaWrong:   {"replicas", "rate", "vote"},
	FaultReplicaError:   {"replicas", "rate", "status"},
	FaultControllerKill: nil,
	FaultBadRollout:     nil,
	FaultDisaster:       nil,
}

// FaultTypes lists the fault types a phase may inject, in the order of
// their constants.
func FaultTypes() []string {
	return []string{FaultReplicaKill, FaultReplicaStop, FaultReplicaSlow, FaultReplicaWrong,
		FaultReplicaError, FaultControllerKill, FaultBadRollout, FaultDisaster}
}

// appliesTo lists the fault types that take field.
func appliesTo(field string) []string {
	var types []string
	for _, t := range FaultTypes() {
		if slices.Contains(faultFieldsFor[t], field) {
			types = append(types, t)
		}
	}
	return types
}

// hitsReplicas tells whether the fault acts on some of the replicas.
func (f *Fault) hitsReplicas() bool { return slices.Contains(faultFieldsFor[f.Type], "replicas") }

// fillDefaults sets the defaults of the fields that apply to f's type.
func (f *Fault) fillDefaults() {
	fields := faultFieldsFor[f.Type]
	if slices.Contains(fields, "replicas") {
		f.Replicas = DefaultFaultReplicas
	}
	if slices.Contains(fields, "rate") {
		f.Rate = DefaultFaultRate
	}
	if slices.Contains(fields, "latency") {
		f.Latency = Duration(DefaultFaultLatency)
	}
	if slices.Contains(fields, "status") {
		f.Status = DefaultFaultStatus
	}
}

// Validate checks the rules of a scenario built in code; ParseScenario
// has already checked them, with lines, on one read from a file.
func (s *Scenario) Validate() error {
	if errs := s.validate(nil); len(errs) > 0 {
		return joinScenarioErrors(errs)
	}
	return nil
}

// validate checks every rule that does not need the site. lines maps a
// field to its line in the file (nil for a scenario built in code); a
// field listed there was given, even with a zero value.
func (s *Scenario) validate(lines map[string]int) []*ScenarioError {
	var errs []*ScenarioError
	at := func(field, format string, args ...any) {
		errs = append(errs, &ScenarioError{Line: lineOf(lines, field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(s.Name) == "" {
		at("name", "must not be empty")
	} else if len(s.Name) > maxNameLength {
		at("name", "must be at most %d characters, got %d", maxNameLength, len(s.Name))
	}
	if r := s.Site.Replicas; r < 1 || r > maxSiteReplicas {
		at("site.replicas", "must be 1 to %d, got %d", maxSiteReplicas, r)
	}
	if d := s.Site.BackupInterval.D(); d <= 0 || d > maxBackupInterval {
		at("site.backupInterval", "must be positive and at most %s, got %s", maxBackupInterval, d)
	}
	if r := s.Load.Rate; r < 1 || r > maxLoadRate {
		at("load.rate", "must be 1 to %d requests a second, got %d", maxLoadRate, r)
	}
	if s.Load.Model != "" {
		if err := modelstore.ValidateName("model name", s.Load.Model); err != nil {
			at("load.model", "%v", err)
		}
	}
	if d := s.Load.Timeout.D(); d <= 0 || d > maxLoadTimeout {
		at("load.timeout", "must be positive and at most %s, got %s", maxLoadTimeout, d)
	}
	if w := s.Load.Workers; w < 1 || w > maxLoadWorkers {
		at("load.workers", "must be 1 to %d, got %d", maxLoadWorkers, w)
	}
	if len(s.Phases) == 0 {
		at("phases", "at least one phase is required")
	}
	names := map[string]int{}
	disaster := -1
	for i := range s.Phases {
		p := &s.Phases[i]
		field := "phases[" + strconv.Itoa(i) + "]"
		validatePhaseName(p.Name, field+".name", at)
		if first, dup := names[p.Name]; dup && p.Name != "" {
			at(field+".name", "%q is also the name of phases[%d]; phase names must be unique", p.Name, first)
		} else {
			names[p.Name] = i
		}
		if d := p.Duration.D(); d <= 0 || d > maxPhaseDuration {
			at(field+".duration", "must be positive and at most %s, got %s", maxPhaseDuration, d)
		}
		if p.Fault == nil {
			continue
		}
		validateFault(p, field, lines, at)
		if p.Fault.Type == FaultDisaster {
			if disaster >= 0 {
				at(field+".fault.type", "a second disaster (the first is phases[%d]); a scenario may have at most one", disaster)
			} else {
				disaster = i
			}
		}
	}
	o := s.Objectives
	for _, d := range []struct {
		name string
		v    Duration
	}{{"rto", o.RTO}, {"rtoFull", o.RTOFull}, {"rpo", o.RPO}} {
		switch {
		case d.v < 0:
			at("objectives."+d.name, "must not be negative, got %s", d.v)
		case d.v > 0 && disaster < 0:
			at("objectives."+d.name, "needs a disaster phase: it is measured on the recovery from one")
		}
	}
	if m := o.MaxFailedRequests; m != nil && *m < 0 {
		at("objectives.maxFailedRequests", "must not be negative, got %d", *m)
	}
	return errs
}

func validatePhaseName(name, field string, at func(field, format string, args ...any)) {
	switch {
	case name == "":
		at(field, "must not be empty")
	case len(name) > maxNameLength:
		at(field, "must be at most %d characters, got %d", maxNameLength, len(name))
	case strings.TrimSpace(name) != name:
		at(field, "must not start or end with a space, got %q", name)
	default:
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_. ", c)) {
				at(field, "may hold only letters, digits, '-', '_', '.' and spaces, got %q", name)
				return
			}
		}
	}
}

func validateFault(p *Phase, field string, lines map[string]int, at func(field, format string, args ...any)) {
	f := p.Fault
	field += ".fault"
	fields, known := faultFieldsFor[f.Type]
	if !known {
		at(field+".type", "unknown fault type %q (one of: %s)", f.Type, strings.Join(FaultTypes(), ", "))
		return
	}
	given := map[string]bool{
		"replicas": f.Replicas != 0, "rate": f.Rate != 0, "latency": f.Latency != 0,
		"status": f.Status != 0, "vote": f.Vote, "pause": f.Pause != 0,
	}
	for _, name := range faultFields[1:] {
		if slices.Contains(fields, name) || !given[name] && lines[field+"."+name] == 0 {
			continue
		}
		at(field+"."+name, "applies only to %s, not to %s", strings.Join(appliesTo(name), ", "), f.Type)
	}
	if f.hitsReplicas() && f.Replicas < 1 {
		at(field+".replicas", "must be at least 1, got %d", f.Replicas)
	}
	if slices.Contains(fields, "rate") && !(f.Rate > 0 && f.Rate <= 1) {
		at(field+".rate", "must be more than 0 and at most 1 (a share of requests), got %v", f.Rate)
	}
	if slices.Contains(fields, "latency") && (f.Latency <= 0 || f.Latency.D() > maxPhaseDuration) {
		at(field+".latency", "must be positive and at most %s, got %s", maxPhaseDuration, f.Latency)
	}
	if slices.Contains(fields, "status") && (f.Status < 400 || f.Status > 599) {
		at(field+".status", "must be an HTTP error status, 400 to 599, got %d", f.Status)
	}
	if slices.Contains(fields, "pause") && (f.Pause < 0 || p.Duration > 0 && f.Pause >= p.Duration) {
		at(field+".pause", "must be at least 0 and shorter than the phase (%s), got %s", p.Duration, f.Pause)
	}
	if !p.Masked {
		return
	}
	switch f.Type {
	case FaultDisaster:
		at(p.maskedField(field), "a disaster cannot be masked: clients of the destroyed site see errors until it is recovered")
	case FaultReplicaWrong:
		if !f.Vote {
			at(field+".vote", "a masked replica-wrong phase needs vote: true: without a vote a wrong answer reaches the client")
		}
	}
}

// maskedField is where a masked-phase error points: the masked key.
func (p *Phase) maskedField(faultField string) string {
	return strings.TrimSuffix(faultField, ".fault") + ".masked"
}

// lineOf is the line of field, or of the nearest enclosing field that
// has one, so that a rule about a default still points near it.
func lineOf(lines map[string]int, field string) int {
	for field != "" {
		if l := lines[field]; l > 0 {
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

// Disaster returns the index of the disaster phase, if there is one.
func (s *Scenario) Disaster() (int, bool) {
	for i, p := range s.Phases {
		if p.Fault != nil && p.Fault.Type == FaultDisaster {
			return i, true
		}
	}
	return -1, false
}

// Duration is the sum of the phases' durations: the drill's length
// without the time a disaster's recovery takes.
func (s *Scenario) Duration() time.Duration {
	var sum time.Duration
	for _, p := range s.Phases {
		sum += p.Duration.D()
	}
	return sum
}

// Check tells whether the scenario can run on a site of replicas
// replicas; the runner calls it once it knows the site. A masked phase
// must leave enough healthy replicas to hide its fault.
func (s *Scenario) Check(replicas int) error {
	var errs []*ScenarioError
	at := func(field, format string, args ...any) {
		errs = append(errs, &ScenarioError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if replicas < 1 {
		return &ScenarioError{Field: "site.replicas", Msg: fmt.Sprintf("the site has %d replicas; a drill needs at least 1", replicas)}
	}
	// A vote asks this many replicas and needs a majority of them.
	voters := gateway.DefaultPolicy().Vote.Replicas
	need := voters/2 + 1
	for i, p := range s.Phases {
		f := p.Fault
		if f == nil || !f.hitsReplicas() {
			continue
		}
		field := "phases[" + strconv.Itoa(i) + "]"
		switch {
		case f.Replicas > replicas:
			at(field, "%s %d replicas, but the site has %d", faultVerb(f.Type), f.Replicas, replicas)
		case p.Masked && f.Replicas == replicas:
			at(field, "%s %d of %d replicas: nothing can mask that", faultVerb(f.Type), f.Replicas, replicas)
		case p.Masked && f.Type == FaultReplicaWrong && (f.Replicas >= need || replicas-f.Replicas < need):
			at(field, "%s %d of %d replicas: a vote of %d needs %d right answers, so at most %d of them may be wrong and %d must be right",
				faultVerb(f.Type), f.Replicas, replicas, voters, need, voters-need, need)
		}
	}
	if len(errs) > 0 {
		return joinScenarioErrors(errs)
	}
	return nil
}

func faultVerb(faultType string) string {
	switch faultType {
	case FaultReplicaKill:
		return "kills"
	case FaultReplicaStop:
		return "stops"
	case FaultReplicaSlow:
		return "slows"
	case FaultReplicaWrong:
		return "corrupts the answers of"
	}
	return "fails requests on"
}

// MarshalYAML writes the duration as a string such as "1m30s", which
// ParseScenario reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalYAML writes only the fields that apply to the fault's type and
// are set, so that a marshalled scenario parses again.
func (f *Fault) MarshalYAML() (any, error) {
	type fault struct {
		Type     string   `yaml:"type"`
		Replicas int      `yaml:"replicas,omitempty"`
		Rate     float64  `yaml:"rate,omitempty"`
		Latency  Duration `yaml:"latency,omitempty"`
		Status   int      `yaml:"status,omitempty"`
		Vote     bool     `yaml:"vote,omitempty"`
		Pause    Duration `yaml:"pause,omitempty"`
	}
	return fault(*f), nil
}
