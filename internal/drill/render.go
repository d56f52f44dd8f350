package drill

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
)

// Report file names inside the directory given to WriteFiles.
const (
	ReportJSON     = "report.json"
	ReportMarkdown = "report.md"
	ReportHTML     = "report.html"
)

// WriteFiles creates dir (0755) if it is missing and writes report.json
// (the Report as indented JSON), report.md and report.html into it, each
// atomically, so a reader never sees half a report.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report directory %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", ReportJSON, err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{ReportJSON, append(js, '\n')},
		{ReportMarkdown, r.Markdown()},
		{ReportHTML, r.HTML()},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := atomicfile.WriteFile(path, f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// The markdown and the HTML render the same document, built once here as
// sections of blocks, so the two can never disagree on what they say.
type docSection struct {
	ID, Title string
	Blocks    []docBlock
}

// block is one of: a paragraph (Text), key/value facts, a list, a table.
// Caption, when set, introduces a list or a table.
type docBlock struct {
	Text    string
	Caption string
	Facts   []docFact
	List    []string
	Table   *docTable
}

type docFact struct {
	Key, Value string
	Class      string // "good" or "bad" colours the value in HTML
}

type docTable struct {
	Head  []string
	Right []bool // right-aligned (numeric) columns
	Rows  []docRow
}

type docRow struct {
	Cells []string
	Class string // "bad" marks the row in HTML
}

func (r *Report) sections() []docSection {
	out := []docSection{r.summarySection(), r.objectivesSection(), r.phasesSection(),
		r.recoverySection(), r.verificationSection(), r.planSection()}
	if len(r.Problems) > 0 {
		out = append(out, docSection{ID: "problems", Title: "Problems",
			Blocks: []docBlock{{List: r.Problems}}})
	}
	return append(out, r.eventsSection())
}

func verdict(passed bool) string {
	if passed {
		return "PASSED"
	}
	return "FAILED"
}

func (r *Report) duration() float64 {
	if !r.Started.IsZero() && r.Finished.After(r.Started) {
		return r.Finished.Sub(r.Started).Seconds()
	}
	if n := len(r.Timeline); n > 0 {
		return r.Timeline[n-1].At + 1
	}
	return 0
}

func (r *Report) summarySection() docSection {
	s := r.Site
	site := s.Gateway
	if s.Dir != "" {
		site = strings.TrimSpace(site + " (" + s.Dir + ")")
	}
	if s.Scratch {
		site += ", scratch"
	}
	facts := []docFact{
		{Key: "Result", Value: verdict(r.Passed), Class: goodBad(r.Passed)},
		{Key: "Site", Value: site},
		{Key: "Controller", Value: s.Controller},
		{Key: "Model", Value: fmt.Sprintf("%s, %d replicas", s.Model, s.Replicas)},
		{Key: "Load", Value: fmt.Sprintf("%d requests/s, timeout %s", r.Load.Rate, r.Load.Timeout)},
		{Key: "Duration", Value: humanSeconds(r.duration())},
		{Key: "Started", Value: wallClock(r.Started)},
		{Key: "Bulwark", Value: r.Version},
	}
	if s.Repository != "" {
		facts = append(facts, docFact{Key: "Backup repository", Value: s.Repository})
	}
	if s.Offsite != "" {
		facts = append(facts, docFact{Key: "Off-site copy", Value: s.Offsite})
	}
	if s.RecoveredDir != "" {
		facts = append(facts, docFact{Key: "Recovered site", Value: s.RecoveredDir})
	}
	var blocks []docBlock
	if r.Description != "" {
		blocks = append(blocks, docBlock{Text: r.Description})
	}
	return docSection{ID: "summary", Title: "Summary", Blocks: append(blocks, docBlock{Facts: facts})}
}

var objectiveLabels = map[string]string{
	"rto":               "RTO: disaster → first good answer",
	"rtoFull":           "RTO full: disaster → full capacity",
	"rpo":               "RPO: backup age at the disaster",
	"maxFailedRequests": "Failed requests in masked phases",
}

func (r *Report) objectivesSection() docSection {
	sec := docSection{ID: "objectives", Title: "Objectives"}
	if len(r.Objectives) == 0 {
		sec.Blocks = []docBlock{{Text: "No objectives were set."}}
		return sec
	}
	t := &docTable{Head: []string{"Objective", "Target", "Measured", "Met"},
		Right: []bool{false, true, true, false}}
	for _, o := range r.Objectives {
		name := o.Name
		if l, ok := objectiveLabels[o.Name]; ok {
			name = o.Name + " (" + l + ")"
		}
		met, class := "✓", ""
		if !o.Met {
			met, class = "✗ missed", "bad"
		}
		t.Rows = append(t.Rows, docRow{Class: class, Cells: []string{
			name, "≤ " + withUnit(o.Target, o.Unit), measuredText(o), met}})
	}
	sec.Blocks = []docBlock{{Table: t}}
	return sec
}

func (r *Report) phasesSection() docSection {
	sec := docSection{ID: "phases", Title: "Phases"}
	if len(r.Phases) == 0 {
		sec.Blocks = []docBlock{{Text: "Not run."}}
		return sec
	}
	t := &docTable{
		Head:  []string{"Phase", "Fault", "Masked", "Sent", "Failed", "Wrong", "p50 ms", "p99 ms", "p99.9 ms", "Notes"},
		Right: []bool{false, false, false, true, true, true, true, true, true, false},
	}
	for _, p := range r.Phases {
		fault, masked, class := "—", "", ""
		if p.Fault != "" {
			fault = p.Fault
		}
		if p.Masked {
			masked = "masked"
			if p.Failed > 0 {
				class = "bad"
			}
		}
		failed := fmt.Sprint(p.Failed)
		if len(p.Errors) > 0 {
			failed += " (" + errorBreakdown(p.Errors) + ")"
		}
		t.Rows = append(t.Rows, docRow{Class: class, Cells: []string{
			p.Name, fault, masked, fmt.Sprint(p.Sent), failed, fmt.Sprint(p.Wrong),
			millis(p.P50), millis(p.P99), millis(p.P999), strings.Join(p.Notes, "; ")}})
	}
	sec.Blocks = []docBlock{{Table: t}}
	return sec
}

func (r *Report) recoverySection() docSection {
	sec := docSection{ID: "recovery", Title: "Recovery"}
	rec := r.Recovery
	if rec == nil {
		sec.Blocks = []docBlock{{Text: "Not run: no disaster in this drill."}}
		return sec
	}
	snap := rec.Snapshot
	if !rec.SnapshotAt.IsZero() {
		snap += ", taken " + wallClock(rec.SnapshotAt)
	}
	facts := []docFact{
		{Key: "Restored from", Value: rec.Repository},
		{Key: "Snapshot", Value: snap},
		{Key: "RPO (snapshot age at the disaster)", Value: humanSeconds(rec.RPO)},
		{Key: "Restored", Value: humanBytes(rec.RestoreBytes)},
		{Key: "RTO to the first good answer", Value: humanSeconds(rec.RTOFirst)},
		{Key: "RTO to full capacity", Value: humanSeconds(rec.RTOFull)},
	}
	var marks []string
	for _, m := range []struct {
		name string
		at   time.Time
	}{{"disaster", rec.DisasterAt}, {"restored", rec.RestoredAt},
		{"first good", rec.FirstGoodAt}, {"full capacity", rec.FullCapacityAt}} {
		if !m.at.IsZero() && !r.Started.IsZero() {
			marks = append(marks, fmt.Sprintf("%s t+%.1f s", m.name, m.at.Sub(r.Started).Seconds()))
		}
	}
	if len(marks) > 0 {
		facts = append(facts, docFact{Key: "Moments", Value: strings.Join(marks, ", ")})
	}
	lost := []string{"none"}
	if len(rec.Lost) > 0 {
		lost = lost[:0]
		for _, l := range rec.Lost {
			lost = append(lost, fmt.Sprintf("%s %s: %s", wallClock(l.At), l.Kind, l.What))
		}
	}
	sec.Blocks = []docBlock{{Facts: facts},
		{Caption: "Changes lost (made after the snapshot):", List: lost}}
	return sec
}

func (r *Report) verificationSection() docSection {
	sec := docSection{ID: "verification", Title: "Verification"}
	v := r.Verification
	if v == nil {
		sec.Blocks = []docBlock{{Text: "Not run."}}
		return sec
	}
	result := "passed"
	if !v.Passed {
		result = "failed"
	}
	match := "yes"
	if !v.DeploymentsMatch {
		match = "no"
	}
	sec.Blocks = []docBlock{{Facts: []docFact{
		{Key: "Result", Value: result, Class: goodBad(v.Passed)},
		{Key: "Probes identical", Value: fmt.Sprintf("%d/%d", v.Identical, v.Probes),
			Class: goodBad(v.Identical == v.Probes)},
		{Key: "Deployments match the snapshot", Value: match, Class: goodBad(v.DeploymentsMatch)},
	}}}
	for _, l := range []struct {
		caption string
		items   []string
	}{{"Mismatched probes:", v.Mismatches}, {"Deployments as recovered:", v.Deployments},
		{"Differences:", v.Differences}} {
		if len(l.items) > 0 {
			sec.Blocks = append(sec.Blocks, docBlock{Caption: l.caption, List: l.items})
		}
	}
	return sec
}

func (r *Report) planSection() docSection {
	sec := docSection{ID: "plan", Title: "Plan vs measured"}
	if len(r.Plan) == 0 {
		sec.Blocks = []docBlock{{Text: "Not run."}}
		return sec
	}
	t := &docTable{Head: []string{"Figure", "Planned", "Measured", "Measured / planned", "Formula"},
		Right: []bool{false, true, true, true, false}}
	for _, p := range r.Plan {
		ratio := "—"
		if p.Planned != 0 {
			ratio = fmt.Sprintf("%.2f×", p.Measured/p.Planned)
		}
		t.Rows = append(t.Rows, docRow{Cells: []string{p.Name,
			withUnit(p.Planned, p.Unit), withUnit(p.Measured, p.Unit), ratio, p.Formula}})
	}
	sec.Blocks = []docBlock{{Table: t}}
	return sec
}

func (r *Report) eventsSection() docSection {
	sec := docSection{ID: "events", Title: "Events"}
	if len(r.Events) == 0 {
		sec.Blocks = []docBlock{{Text: "None recorded."}}
		return sec
	}
	t := &docTable{Head: []string{"t", "Phase", "Kind", "Message"}, Right: []bool{true, false, false, false}}
	for _, e := range r.Events {
		t.Rows = append(t.Rows, docRow{Cells: []string{fmt.Sprintf("t+%.1f s", e.At), e.Phase, e.Kind, e.Message}})
	}
	sec.Blocks = []docBlock{{Table: t}}
	return sec
}

func goodBad(ok bool) string {
	if ok {
		return "good"
	}
	return "bad"
}

// humanSeconds writes seconds for a person: "4.21 s", "37.5 s", "12 min 5 s".
func humanSeconds(v float64) string {
	switch a := math.Abs(v); {
	case a < 10:
		return fmt.Sprintf("%.2f s", v)
	case a < 120:
		return fmt.Sprintf("%.1f s", v)
	case a < 7200:
		return fmt.Sprintf("%d min %d s", int(v)/60, int(math.Round(v))%60)
	default:
		return fmt.Sprintf("%d h %d min", int(v)/3600, int(v)%3600/60)
	}
}

func withUnit(v float64, unit string) string {
	switch unit {
	case "s":
		return humanSeconds(v)
	case "requests":
		return fmt.Sprintf("%d requests", int64(math.Round(v)))
	case "":
		return fmt.Sprintf("%g", v)
	default:
		return fmt.Sprintf("%g %s", v, unit)
	}
}

func millis(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}

func wallClock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// errorBreakdown writes failures by kind, most frequent first: "503×12, timeout×3".
func errorBreakdown(errs map[string]int64) string {
	kinds := make([]string, 0, len(errs))
	for k := range errs {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if errs[kinds[i]] != errs[kinds[j]] {
			return errs[kinds[i]] > errs[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s×%d", k, errs[k])
	}
	return strings.Join(parts, ", ")
}

// measuredText is an objective's measurement, or why there is none.
func measuredText(o ObjectiveResult) string {
	if o.NotMeasured {
		return "not measured"
	}
	return withUnit(o.Measured, o.Unit)
}
