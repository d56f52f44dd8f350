package drill

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleReport is a realistic drill of a minute: six phases, one a
// disaster with failed requests, one missed objective.
func sampleReport() *Report {
	start := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	phases := []struct {
		name, fault string
		masked      bool
		from, to    float64
	}{
		{"steady", "", false, 0, 10},
		{"replica kill", FaultReplicaKill, true, 10, 20},
		{"controller kill", FaultControllerKill, true, 20, 28},
		{"bad rollout", FaultBadRollout, true, 28, 38},
		{"disaster", FaultDisaster, false, 38, 55},
		{"after", "", false, 55, 60},
	}
	r := &Report{
		Scenario: "default", Description: "Faults on replicas and the controller, a bad rollout, then the site is lost.",
		Version: "v0.4.0", Started: start, Finished: at(61.2),
		Site: SiteInfo{Dir: "site", Scratch: true, Gateway: "http://127.0.0.1:8080", Controller: "http://127.0.0.1:8070",
			Replicas: 3, Model: "iris", Repository: "backups", RecoveredDir: "site-recovered"},
		Load: LoadSpec{Rate: 50, Model: "iris", Timeout: Duration(5 * time.Second), Workers: 16},
	}
	for _, p := range phases {
		pr := PhaseResult{Name: p.name, Fault: p.fault, Masked: p.masked, Start: at(p.from), End: at(p.to),
			Sent: int64(50 * (p.to - p.from)), P50: 3.1, P99: 9.8, P999: 14.2, Max: 20}
		switch p.name {
		case "replica kill":
			pr.Failed, pr.Errors, pr.P99, pr.P999 = 3, map[string]int64{"503": 2, "timeout": 1}, 121, 480
			pr.Notes = []string{"killed replica 2 (pid 4242)", "restarted after 1.2 s"}
		case "bad rollout":
			pr.Notes = []string{"rolled back: batch 1 failed 100% of requests"}
		case "disaster":
			pr.Failed, pr.Errors, pr.P99, pr.P999, pr.Max = 212, map[string]int64{"connection": 212}, 5200, 5200, 5200
		}
		r.Phases = append(r.Phases, pr)
	}
	for s := 0; s < 60; s++ {
		sec := Second{At: float64(s), Requests: 50, P99: 8 + float64(s%5)}
		switch {
		case s == 12:
			sec.Failed, sec.P99 = 3, 121
		case s >= 38 && s < 42:
			sec.Failed, sec.P99 = 50, 0
		case s == 42:
			sec.Failed, sec.P99 = 12, 5200
		case s >= 43 && s < 48:
			sec.P99 = 40 - float64(s-43)*5
		}
		r.Timeline = append(r.Timeline, sec)
	}
	r.Events = []Event{
		{At: 10, Phase: "replica kill", Kind: "fault", Message: "SIGKILL replica 2 (pid 4242)"},
		{At: 20, Phase: "replica kill", Kind: "clear", Message: "replica 2 serves again"},
		{At: 20, Phase: "controller kill", Kind: "fault", Message: "SIGKILL controller (pid 4100)"},
		{At: 28, Phase: "bad rollout", Kind: "fault", Message: "rolled out iris:3 (broken)"},
		{At: 31.5, Phase: "bad rollout", Kind: "rollback", Message: "rolled back to rev 4: batch 1 failed"},
		{At: 38, Phase: "disaster", Kind: "disaster", Message: "site destroyed: 5 processes killed, directory removed"},
		{At: 40.9, Phase: "disaster", Kind: "restored", Message: "snapshot 3f2a9c1e restored (18.4 MiB)"},
		{At: 42.3, Phase: "disaster", Kind: "first-good", Message: "first good answer from the recovered site"},
		{At: 48.2, Phase: "disaster", Kind: "full-capacity", Message: "3/3 replicas serve"},
	}
	r.Recovery = &Recovery{Repository: "backups", Snapshot: "3f2a9c1e", SnapshotAt: at(20.6), DisasterAt: at(38),
		RestoredAt: at(40.9), FirstGoodAt: at(42.3), FullCapacityAt: at(48.2), RestoreBytes: 19293798,
		RTOFirst: 4.3, RTOFull: 10.2, RPO: 17.4,
		Lost: []LostChange{{At: at(29), Kind: "model-version", What: "iris:3"}, {At: at(31.5), Kind: "revision", What: "iris rev 5"}}}
	r.Verification = &Verification{Probes: 64, Identical: 64, DeploymentsMatch: true,
		Deployments: []string{"iris rev 4 (iris:2)"}, Passed: true}
	r.Plan = []PlanRow{{Name: "RTO first good", Planned: 5, Measured: 4.3, Unit: "s", Formula: "restore + start + load"},
		{Name: "RPO worst case", Planned: 30, Measured: 17.4, Unit: "s"}}
	maxFailed := 0
	r.Objectives = []ObjectiveResult{
		{Name: "rto", Target: 10, Measured: 4.3, Unit: "s", Met: true},
		{Name: "rtoFull", Target: 30, Measured: 10.2, Unit: "s", Met: true},
		{Name: "rpo", Target: 30, Measured: 17.4, Unit: "s", Met: true},
		{Name: "maxFailedRequests", Target: float64(maxFailed), Measured: 3, Unit: "requests", Met: false},
	}
	return r
}

func TestWriteFilesWritesAllThreeAndJSONRoundTrips(t *testing.T) {
	r := sampleReport()
	dir := filepath.Join(t.TempDir(), "drills", "latest") // does not exist yet
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("report.json does not decode: %v", err)
	}
	want, _ := json.Marshal(r)
	got, _ := json.Marshal(&back)
	if !bytes.Equal(want, got) {
		t.Fatalf("report.json does not round-trip:\nwant %s\n got %s", want, got)
	}
	for name, want := range map[string][]byte{ReportMarkdown: r.Markdown(), ReportHTML: r.HTML()} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the renderer gives", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("want exactly the three reports in %s, got %d entries", dir, len(entries))
	}
}

func TestWriteFilesErrorNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	// A directory where report.html should go makes its rename fail.
	if err := os.Mkdir(filepath.Join(dir, ReportHTML), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ReportHTML, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := sampleReport().WriteFiles(dir)
	if err == nil || !strings.Contains(err.Error(), ReportHTML) {
		t.Fatalf("error %v does not name %s", err, ReportHTML)
	}

	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = sampleReport().WriteFiles(file)
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("error %v does not name %s", err, file)
	}
}

func TestMarkdownSaysWhatHappened(t *testing.T) {
	r := sampleReport()
	md := string(r.Markdown())
	if !strings.HasPrefix(md, "# Drill default: FAILED\n") {
		t.Errorf("title: %q", strings.SplitN(md, "\n", 2)[0])
	}
	for _, p := range r.Phases {
		if !strings.Contains(md, "| "+p.Name+" |") {
			t.Errorf("no row for phase %q", p.Name)
		}
	}
	for _, want := range []string{
		"| rto (RTO: disaster → first good answer) | ≤ 10.0 s | 4.30 s | ✓ |",
		"| maxFailedRequests (Failed requests in masked phases) | ≤ 0 requests | 3 requests | ✗ missed |",
		"| 3 (503×2, timeout×1) |", "killed replica 2 (pid 4242); restarted after 1.2 s",
		"**RPO (snapshot age at the disaster):** 17.4 s", "- 2026-03-14 09:27:22 UTC model-version: iris:3",
		"**Probes identical:** 64/64", "| RTO first good | 5.00 s | 4.30 s | 0.86× |",
		"| t+38.0 s | disaster | disaster | site destroyed",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	checkMarkdownTables(t, md)
}

// checkMarkdownTables fails when a row of a table has another number of
// cells than its header: an unescaped pipe or line break got through.
func checkMarkdownTables(t *testing.T, md string) {
	t.Helper()
	cols := -1
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = -1
			continue
		}
		n := 0
		for i, backslashes := 0, 0; i < len(line); i++ {
			switch line[i] {
			case '\\':
				backslashes++
				continue
			case '|':
				if backslashes%2 == 0 {
					n++
				}
			}
			backslashes = 0
		}
		if cols == -1 {
			cols = n
		} else if n != cols {
			t.Errorf("row has %d cell separators, its table %d: %q", n-1, cols-1, line)
		}
	}
}

// svgOf extracts the timeline and checks it is well-formed XML.
func svgOf(t *testing.T, page []byte) string {
	t.Helper()
	s := string(page)
	i, j := strings.Index(s, "<svg"), strings.LastIndex(s, "</svg>")
	if i < 0 || j < i {
		t.Fatal("no <svg> element in the page")
	}
	svg := s[i : j+len("</svg>")]
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
	}
	return svg
}

func TestHTMLHasTimelineAndSections(t *testing.T) {
	page := sampleReport().HTML()
	svg := svgOf(t, page)
	for _, want := range []string{"RTO 4.3 s", "RTO full 10.2 s", ">replica kill<", ">masked<",
		"<title>t+38.0 s · disaster · disaster: site destroyed", "log scale"} {
		if !strings.Contains(svg, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	html := string(page)
	for _, want := range []string{`class="banner failed"`, `id="objectives"`, `id="phases"`, `id="recovery"`,
		`id="verification"`, `id="plan"`, `id="events"`, "✗ missed", "iris rev 5"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, external := range []string{"<script", "<link", "src=", "@import"} {
		if strings.Contains(html, external) {
			t.Errorf("page is not self-contained: has %q", external)
		}
	}
}

func hostileReport() *Report {
	r := sampleReport()
	evil := "<script>alert(1)</script>"
	r.Scenario = evil
	r.Description = "line one\nline two & \"quotes\" 'too'"
	r.Phases[1].Name = "a|b\nc " + evil
	r.Phases[1].Notes = []string{"pipe | in note", "back\\slash|"}
	r.Events[0].Phase, r.Events[0].Kind, r.Events[0].Message = "a|b\nc", "<b>fault</b>", evil+" \"x\" & y"
	r.Recovery.Lost[0].What = evil
	r.Verification.Mismatches = []string{evil}
	r.Problems = []string{"could not inject | " + evil}
	return r
}

func TestHostileTextIsEscaped(t *testing.T) {
	r := hostileReport()
	page := r.HTML()
	svgOf(t, page)
	if bytes.Contains(bytes.ToLower(page), []byte("<script")) {
		t.Error("a <script> from the report reached the page unescaped")
	}
	if bytes.Contains(page, []byte("<b>fault")) {
		t.Error("markup from an event kind reached the page unescaped")
	}
	md := string(r.Markdown())
	if strings.Contains(md, "<script") {
		t.Error("a <script> from the report reached the markdown unescaped")
	}
	if !strings.HasPrefix(md, "# Drill &lt;script>alert(1)&lt;/script>: FAILED\n") {
		t.Errorf("title: %q", strings.SplitN(md, "\n", 2)[0])
	}
	checkMarkdownTables(t, md)
}

func TestEmptyReportRenders(t *testing.T) {
	r := &Report{}
	md := string(r.Markdown())
	for _, want := range []string{"FAILED", "## Phases\n\nNot run.", "## Recovery\n\nNot run", "## Verification\n\nNot run."} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown of an empty report lacks %q", want)
		}
	}
	svg := svgOf(t, r.HTML())
	if !strings.Contains(svg, "no load recorded") {
		t.Error("an empty timeline is not said to be empty")
	}
	if err := r.WriteFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestLongDrillKeepsTicksFew(t *testing.T) {
	r := sampleReport()
	r.Timeline = r.Timeline[:0]
	for s := 0; s < 1800; s++ {
		r.Timeline = append(r.Timeline, Second{At: float64(s), Requests: 50, P99: 10})
	}
	for _, span := range []int{40, 1800} {
		r.Timeline = r.Timeline[:span]
		svg := svgOf(t, r.HTML())
		n := strings.Count(svg, `class="xtick"`)
		if n < 3 || n > 20 {
			t.Errorf("%d s drill: %d labelled ticks, want 3 to 20", span, n)
		}
	}
	if !strings.Contains(svgOf(t, r.HTML()), "minutes from the start") {
		t.Error("a 30 min drill is not labelled in minutes")
	}
}

// TestSampleReport writes the sample report where a person can open it
// when BULWARK_KEEP_REPORT names a directory.
func TestSampleReport(t *testing.T) {
	dir := os.Getenv("BULWARK_KEEP_REPORT")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := sampleReport().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ReportJSON, ReportMarkdown, ReportHTML} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, %v bytes", name, err, fi)
		}
	}
}

// FuzzRenderText feeds arbitrary names and messages to both renderers:
// the SVG must stay well-formed and markdown tables keep their shape.
func FuzzRenderText(f *testing.F) {
	for _, s := range []string{"<script>alert(1)</script>", "a|b\nc", `\|`, "&amp; \"'", "]]>", "\x00\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := &Report{Scenario: s, Started: time.Unix(0, 0),
			Phases:   []PhaseResult{{Name: s, Notes: []string{s}, Start: time.Unix(0, 0), End: time.Unix(5, 0), Masked: true}},
			Timeline: []Second{{At: 0, Requests: 1, P99: 1}, {At: 1, Requests: 1, Failed: 1}},
			Events:   []Event{{At: 1, Phase: s, Kind: s, Message: s}},
		}
		checkMarkdownTables(t, string(r.Markdown()))
		page := r.HTML()
		if bytes.Contains(bytes.ToLower(page), []byte("<script")) {
			t.Fatalf("%q put a script on the page", s)
		}
		svgOf(t, page)
	})
}

func BenchmarkRender(b *testing.B) {
	long := sampleReport()
	long.Timeline = nil
	for s := 0; s < 1800; s++ {
		long.Timeline = append(long.Timeline, Second{At: float64(s), Requests: 50, P99: 10})
	}
	for name, r := range map[string]*Report{"60s": sampleReport(), "30min": long} {
		b.Run("markdown/"+name, func(b *testing.B) {
			for b.Loop() {
				r.Markdown()
			}
		})
		b.Run("html/"+name, func(b *testing.B) {
			var n int
			for b.Loop() {
				n = len(r.HTML())
			}
			b.ReportMetric(float64(n), "bytes/page")
		})
	}
}
