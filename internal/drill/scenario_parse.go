package drill

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidScenario is matched (errors.Is) by every error about the
// content of a scenario: syntax, unknown fields, types and rules.
var ErrInvalidScenario = errors.New("invalid scenario")

// ScenarioError is one problem of a scenario, with the line it is on when
// the scenario was parsed from a file.
type ScenarioError struct {
	Line  int
	Field string // e.g. phases[3].fault.rate
	Msg   string
}

func (e *ScenarioError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// Is makes every ScenarioError an ErrInvalidScenario.
func (e *ScenarioError) Is(target error) bool { return target == ErrInvalidScenario }

// Defaults a scenario leaves out.
const (
	DefaultSiteReplicas   = 3
	DefaultBackupInterval = 30 * time.Second
	DefaultLoadRate       = 50
	DefaultLoadTimeout    = 5 * time.Second
	DefaultLoadWorkers    = 16
	DefaultFaultReplicas  = 1
	DefaultFaultRate      = 1.0
	DefaultFaultLatency   = 2 * time.Second
	DefaultFaultStatus    = 500
)

// Known fields of each mapping, in the order the docs list them.
var (
	scenarioFields   = []string{"name", "description", "site", "load", "objectives", "phases"}
	siteFields       = []string{"replicas", "backupInterval"}
	loadFields       = []string{"rate", "model", "timeout", "workers"}
	objectivesFields = []string{"rto", "rtoFull", "rpo", "maxFailedRequests"}
	phaseFields      = []string{"name", "duration", "masked", "fault"}
	faultFields      = []string{"type", "replicas", "rate", "latency", "status", "vote", "pause"}
)

// ParseScenario reads one scenario document, fills the defaults and
// validates it. Errors are joined *ScenarioErrors naming the line and the
// field ("line 12: phases[3].fault: unknown field \"rat\""), all of them
// rather than the first; unknown fields are errors so that a typo cannot
// silently keep a default.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidScenario, err)
		}
		if len(doc.Content) > 0 && doc.Content[0].ShortTag() != "!!null" {
			docs = append(docs, doc.Content[0])
		}
	}
	switch len(docs) {
	case 0:
		return nil, &ScenarioError{Field: "document", Msg: "empty: expected a scenario"}
	case 1:
	default:
		return nil, &ScenarioError{Line: docs[1].Line, Field: "document",
			Msg: fmt.Sprintf("%d documents in one file; a scenario is one document", len(docs))}
	}
	r := &scenarioReader{lines: map[string]int{}}
	s := r.scenario(docs[0])
	v := s.validate(r.lines)
	// A field whose value could not be read keeps its zero value; the
	// rules would only repeat that it is wrong.
	for _, e := range v {
		if !r.alreadyBad(e.Field) {
			r.errs = append(r.errs, e)
		}
	}
	if len(r.errs) > 0 {
		return nil, joinScenarioErrors(r.errs)
	}
	return s, nil
}

// joinScenarioErrors joins problems in the order of their lines.
func joinScenarioErrors(errs []*ScenarioError) error {
	slices.SortStableFunc(errs, func(a, b *ScenarioError) int { return cmp.Compare(a.Line, b.Line) })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// scenarioReader decodes a document node by node, recording the line of
// every field it meets and collecting every problem.
type scenarioReader struct {
	errs  []*ScenarioError
	lines map[string]int
	bad   []string // fields whose values could not be read
}

func (r *scenarioReader) fail(line int, field, format string, args ...any) {
	r.errs = append(r.errs, &ScenarioError{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// badValue reports a value of the wrong type or form.
func (r *scenarioReader) badValue(n *yaml.Node, field, format string, args ...any) {
	r.fail(n.Line, field, format, args...)
	r.bad = append(r.bad, field)
}

func (r *scenarioReader) alreadyBad(field string) bool {
	for _, f := range r.bad {
		if f == field || strings.HasPrefix(field, f+".") || strings.HasPrefix(field, f+"[") {
			return true
		}
	}
	return false
}

func yamlDeref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func yamlIsNull(n *yaml.Node) bool {
	n = yamlDeref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describeYAMLNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func scenarioFieldPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping returns the fields of a mapping node by name, reporting unknown
// and repeated keys. A missing or null node is an empty mapping.
func (r *scenarioReader) mapping(n *yaml.Node, field string, known []string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if yamlIsNull(n) {
		return out
	}
	name := cmp.Or(field, "document")
	if n = yamlDeref(n); n.Kind != yaml.MappingNode {
		r.badValue(n, name, "must be a mapping, got %s", describeYAMLNode(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := scenarioFieldPath(field, k.Value)
		switch {
		case !slices.Contains(known, k.Value):
			r.fail(k.Line, name, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
		case out[k.Value] != nil:
			r.fail(k.Line, path, "given twice (first on line %d)", r.lines[path])
		default:
			r.lines[path] = k.Line
			out[k.Value] = v
		}
	}
	return out
}

func (r *scenarioReader) list(n *yaml.Node, field string) []*yaml.Node {
	if yamlIsNull(n) {
		return nil
	}
	if n = yamlDeref(n); n.Kind != yaml.SequenceNode {
		r.badValue(n, field, "must be a list, got %s", describeYAMLNode(n))
		return nil
	}
	return n.Content
}

// scalar returns a scalar's text, or false after reporting a non-scalar.
func (r *scenarioReader) scalar(n *yaml.Node, field string) (string, bool) {
	if n = yamlDeref(n); n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		r.badValue(n, field, "must be a value, got %s", describeYAMLNode(n))
		return "", false
	}
	return n.Value, true
}

func (r *scenarioReader) str(n *yaml.Node, field string, dst *string) {
	if s, ok := r.scalar(n, field); ok {
		*dst = s
	}
}

func (r *scenarioReader) integer(n *yaml.Node, field string, dst *int) {
	s, ok := r.scalar(n, field)
	if !ok {
		return
	}
	var v int
	if yamlDeref(n).ShortTag() != "!!int" || yamlDeref(n).Decode(&v) != nil {
		r.badValue(n, field, "must be an integer, got %q", s)
		return
	}
	*dst = v
}

func (r *scenarioReader) number(n *yaml.Node, field string, dst *float64) {
	s, ok := r.scalar(n, field)
	if !ok {
		return
	}
	var v float64
	if t := yamlDeref(n).ShortTag(); (t != "!!int" && t != "!!float") || yamlDeref(n).Decode(&v) != nil {
		r.badValue(n, field, "must be a number, got %q", s)
		return
	}
	*dst = v
}

func (r *scenarioReader) boolean(n *yaml.Node, field string, dst *bool) {
	s, ok := r.scalar(n, field)
	if !ok {
		return
	}
	var v bool
	if yamlDeref(n).ShortTag() != "!!bool" || yamlDeref(n).Decode(&v) != nil {
		r.badValue(n, field, "must be true or false, got %q", s)
		return
	}
	*dst = v
}

func (r *scenarioReader) duration(n *yaml.Node, field string, dst *Duration) {
	s, ok := r.scalar(n, field)
	if !ok {
		return
	}
	if s == "0" {
		*dst = 0
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		r.badValue(n, field, "must be a duration such as 30s or 2m, got %q", s)
		return
	}
	*dst = Duration(v)
}

// scenario reads the document's fields into a Scenario with the defaults
// filled in. It checks structure and types; the rules are validate's.
func (r *scenarioReader) scenario(root *yaml.Node) *Scenario {
	s := &Scenario{
		Site: SiteSpec{Replicas: DefaultSiteReplicas, BackupInterval: Duration(DefaultBackupInterval)},
		Load: LoadSpec{Rate: DefaultLoadRate, Timeout: Duration(DefaultLoadTimeout), Workers: DefaultLoadWorkers},
	}
	top := r.mapping(root, "", scenarioFields)
	for _, f := range []string{"name", "phases"} {
		if top[f] == nil && !r.alreadyBad("document") {
			r.fail(yamlDeref(root).Line, f, "required")
			r.bad = append(r.bad, f)
		}
	}
	if n := top["name"]; n != nil {
		r.str(n, "name", &s.Name)
	}
	if n := top["description"]; n != nil && !yamlIsNull(n) {
		r.str(n, "description", &s.Description)
	}
	site := r.mapping(top["site"], "site", siteFields)
	if n := site["replicas"]; n != nil {
		r.integer(n, "site.replicas", &s.Site.Replicas)
	}
	if n := site["backupInterval"]; n != nil {
		r.duration(n, "site.backupInterval", &s.Site.BackupInterval)
	}
	load := r.mapping(top["load"], "load", loadFields)
	if n := load["rate"]; n != nil {
		r.integer(n, "load.rate", &s.Load.Rate)
	}
	if n := load["model"]; n != nil && !yamlIsNull(n) {
		r.str(n, "load.model", &s.Load.Model)
	}
	if n := load["timeout"]; n != nil {
		r.duration(n, "load.timeout", &s.Load.Timeout)
	}
	if n := load["workers"]; n != nil {
		r.integer(n, "load.workers", &s.Load.Workers)
	}
	obj := r.mapping(top["objectives"], "objectives", objectivesFields)
	for name, dst := range map[string]*Duration{"rto": &s.Objectives.RTO, "rtoFull": &s.Objectives.RTOFull, "rpo": &s.Objectives.RPO} {
		if n := obj[name]; n != nil && !yamlIsNull(n) {
			r.duration(n, "objectives."+name, dst)
		}
	}
	if n := obj["maxFailedRequests"]; n != nil && !yamlIsNull(n) {
		v := -1
		r.integer(n, "objectives.maxFailedRequests", &v)
		if !r.alreadyBad("objectives.maxFailedRequests") {
			s.Objectives.MaxFailedRequests = &v
		}
	}
	for i, item := range r.list(top["phases"], "phases") {
		s.Phases = append(s.Phases, r.phase(item, "phases["+strconv.Itoa(i)+"]"))
	}
	return s
}

func (r *scenarioReader) phase(n *yaml.Node, field string) Phase {
	r.lines[field] = yamlDeref(n).Line
	var p Phase
	m := r.mapping(n, field, phaseFields)
	if yamlDeref(n).Kind != yaml.MappingNode {
		return p
	}
	for _, f := range []string{"name", "duration"} {
		if m[f] == nil {
			r.fail(yamlDeref(n).Line, field+"."+f, "required")
			r.bad = append(r.bad, field+"."+f)
		}
	}
	if v := m["name"]; v != nil {
		r.str(v, field+".name", &p.Name)
	}
	if v := m["duration"]; v != nil {
		r.duration(v, field+".duration", &p.Duration)
	}
	if v := m["masked"]; v != nil {
		r.boolean(v, field+".masked", &p.Masked)
	}
	if v := m["fault"]; v != nil && !yamlIsNull(v) {
		p.Fault = r.fault(v, field+".fault")
	}
	return p
}

func (r *scenarioReader) fault(n *yaml.Node, field string) *Fault {
	f := &Fault{}
	m := r.mapping(n, field, faultFields)
	if yamlDeref(n).Kind != yaml.MappingNode {
		return f
	}
	if v := m["type"]; v != nil {
		r.str(v, field+".type", &f.Type)
	} else {
		r.fail(yamlDeref(n).Line, field+".type", "required (one of: %s)", strings.Join(FaultTypes(), ", "))
		r.bad = append(r.bad, field+".type")
	}
	f.fillDefaults()
	if v := m["replicas"]; v != nil {
		r.integer(v, field+".replicas", &f.Replicas)
	}
	if v := m["rate"]; v != nil {
		r.number(v, field+".rate", &f.Rate)
	}
	if v := m["latency"]; v != nil {
		r.duration(v, field+".latency", &f.Latency)
	}
	if v := m["status"]; v != nil {
		r.integer(v, field+".status", &f.Status)
	}
	if v := m["vote"]; v != nil {
		r.boolean(v, field+".vote", &f.Vote)
	}
	if v := m["pause"]; v != nil {
		r.duration(v, field+".pause", &f.Pause)
	}
	return f
}
