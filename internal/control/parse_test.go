package control

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseExample(t *testing.T) {
	d := mustParse(t, edit(t, irisDoc, "name: iris", "name: iris\n  resourceVersion: 3"))
	s := d.Spec
	if d.Metadata.Name != "iris" || d.Metadata.ResourceVersion != 3 || s.Model != "iris" || s.Replicas != 3 {
		t.Fatalf("metadata/spec: %+v %+v", d.Metadata, s)
	}
	if len(s.Versions) != 2 || s.Versions[0] != (VersionWeight{"1", 90}) || s.Versions[1] != (VersionWeight{"2", 10}) {
		t.Fatalf("versions %+v", s.Versions)
	}
	want := Rollout{MaxSurge: 1, ReadyTimeout: Duration(time.Minute), Observe: Duration(30 * time.Second), MaxErrorRate: 0.05, MaxP99Latency: Duration(500 * time.Millisecond)}
	if s.Rollout != want || strings.Join(s.Zones, ",") != "a,b,c" || s.RevisionHistoryLimit != 10 {
		t.Fatalf("rollout %+v zones %v limit %d", s.Rollout, s.Zones, s.RevisionHistoryLimit)
	}
	p, err := d.EffectivePolicy()
	if err != nil || !p.Hedge.Enabled || p.Retry.Attempts != 3 {
		t.Fatalf("effective policy %+v %v", p, err)
	}
}

func TestParseFillsDefaults(t *testing.T) {
	d := mustParse(t, "apiVersion: bulwark.dev/v1\nkind: Deployment\nmetadata: {name: m}\nspec: {model: iris, versions: [{version: 2}]}\n")
	s := d.Spec
	if s.Replicas != DefaultReplicas || s.Versions[0] != (VersionWeight{"2", 100}) || s.RevisionHistoryLimit != DefaultRevisionHistoryLimit {
		t.Fatalf("defaults: %+v", s)
	}
	if s.Rollout.ReadyTimeout != DefaultReadyTimeout || s.Rollout.Observe != DefaultObserve || s.Rollout.MaxSurge != DefaultMaxSurge {
		t.Fatalf("rollout defaults: %+v", s.Rollout)
	}
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"invalid YAML", edit(t, irisDoc, "replicas: 3", "replicas: [3"), "yaml: line"},
		{"unknown field", edit(t, irisDoc, "replicas: 3", "replica: 3"), "line 10: spec.replica: unknown field"},
		{"unknown top field", irisDoc + "extra: 1\n", "line 16: extra: unknown field"},
		{"replicas below 1", edit(t, irisDoc, "replicas: 3", "replicas: 0"), "line 10: spec.replicas: must be at least 1, got 0"},
		{"replicas not a number", edit(t, irisDoc, "replicas: 3", "replicas: three"), `line 10: spec.replicas: must be an integer, got "three"`},
		{"weights not 100", edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "2", weight: 20}`), "line 7: spec.versions: weights must sum to 100, got 110 (90 + 20)"},
		{"weight missing", edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "2"}`), "line 9: spec.versions[1].weight: required when there are several versions"},
		{"duplicate version", edit(t, irisDoc, `- {version: "2", weight: 10}`, `- {version: "1", weight: 10}`), `line 9: spec.versions[1].version: version "1" is listed twice`},
		{"negative duration", edit(t, irisDoc, "rollout:", "rollout: {observe: -5s}"), "line 12: spec.rollout.observe: must not be negative, got -5s"},
		{"bad duration", edit(t, irisDoc, "rollout:", "rollout: {readyTimeout: soon}"), `line 12: spec.rollout.readyTimeout: must be a duration such as 30s or 500ms, got "soon"`},
		{"wrong apiVersion", edit(t, irisDoc, "apiVersion:", "apiVersion: apps/v1"), `line 1: apiVersion: must be bulwark.dev/v1, got "apps/v1"`},
		{"wrong kind", edit(t, irisDoc, "kind:", "kind: Service"), `line 2: kind: must be Deployment, got "Service"`},
		{"missing name", edit(t, irisDoc, "name: iris", "labels: x"), "line 4: metadata.labels: unknown field"},
		{"missing name only", edit(t, irisDoc, "name: iris", "resourceVersion: 1"), "line 3: metadata.name: required"},
		{"bad name", edit(t, irisDoc, "name: iris", "name: ../etc"), `line 4: metadata.name: invalid deployment name "../etc"`},
		{"missing model", edit(t, irisDoc, "model: iris", "zones: [a]"), "line 5: spec.model: required"},
		{"policy value", edit(t, irisDoc, "hedge: {enabled: true}", "retry: {budget: 2}"), "line 14: spec.policy.retry.budget: must be between 0 and 1, got 2"},
		{"policy unknown field", edit(t, irisDoc, "hedge: {enabled: true}", "hedge: {enabeld: true}"), "line 14: spec.policy.hedge.enabeld: unknown field"},
		{"policy type", edit(t, irisDoc, "hedge: {enabled: true}", "timeout: 5 seconds"), "line 14: spec.policy.timeout: cannot unmarshal"},
		{"negative history", edit(t, irisDoc, "revisionHistoryLimit: 10", "revisionHistoryLimit: -1"), "line 15: spec.revisionHistoryLimit: must not be negative"},
		{"duplicate key", edit(t, irisDoc, "replicas: 3", "replicas: 3\n  replicas: 4"), "line 11: spec.replicas: given twice (first on line 10)"},
		{"two documents", irisDoc + "---\n" + irisDoc, "line 17: document: 2 documents in one body"},
		{"not a mapping", "- a\n- b\n", "line 1: document: must be a mapping, got a list"},
		{"empty", "# nothing\n", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, c.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	doc := edit(t, edit(t, irisDoc, "replicas: 3", "replicas: 0\n  colour: red"), "zones:", "zones: [a, a]")
	_, err := Parse([]byte(doc))
	for _, want := range []string{"spec.replicas: must be at least 1", "spec.colour: unknown field", `zone "a" is listed twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nmissing %q", err, want)
		}
	}
}

func TestParseJSONRoundTrip(t *testing.T) {
	d := mustParse(t, irisDoc)
	d.Status = &Status{Phase: PhaseAvailable}
	d.Metadata.Revision = 4
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	// What the API prints must apply again as it is: status and output
	// metadata are accepted and ignored.
	back := mustParse(t, string(b))
	if !back.Spec.equal(&d.Spec) {
		t.Fatalf("round trip changed the spec:\n%+v\n%+v", back.Spec, d.Spec)
	}
	var fromJSON Spec
	if err := json.Unmarshal(b[strings.Index(string(b), `"spec":`)+7:strings.Index(string(b), `,"status"`)], &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !fromJSON.equal(&d.Spec) {
		t.Fatalf("JSON decode changed the spec: %+v", fromJSON)
	}
}

func TestSplitDocuments(t *testing.T) {
	file := "---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n--- {c: 3}\n"
	docs := SplitDocuments([]byte(file))
	if len(docs) != 3 || docs[0].Line != 1 || docs[1].Line != 5 || docs[2].Line != 8 {
		t.Fatalf("docs %+v", docs)
	}
	for _, d := range docs {
		if n := strings.Count(string(d.Body[:strings.IndexFunc(string(d.Body), func(r rune) bool { return r != '\n' })]), "\n"); n != d.Line-1 {
			t.Fatalf("document at line %d padded with %d lines", d.Line, n)
		}
	}
}
