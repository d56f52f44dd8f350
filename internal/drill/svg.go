package drill

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// Geometry of the timeline, in SVG user units; the page scales it to its
// width, and it reads well at about 1000 px.
const (
	svgWidth        = 1000.0
	svgHeight       = 410.0
	plotLeft        = 64.0
	plotRight       = svgWidth - 70
	plotTop         = 62.0
	plotBottom      = 318.0
	charWidth       = 6.2 // average width of a character of the 11px labels, generous
	legendCharWidth = 5.6
)

// svgTimeline holds the scales of one drawing.
type svgTimeline struct {
	b       *bytes.Buffer
	span    float64 // seconds covered by the x axis
	reqTop  float64 // requests/s at the top of the left axis
	reqStep float64 // between the left axis' ticks
	msLo    float64 // p99 ms at the bottom of the right (log) axis
	msHi    float64 // and at its top
}

func (t *svgTimeline) x(sec float64) float64 {
	return plotLeft + math.Max(0, math.Min(sec, t.span))/t.span*(plotRight-plotLeft)
}

func (t *svgTimeline) yReq(v float64) float64 {
	return plotBottom - math.Min(v, t.reqTop)/t.reqTop*(plotBottom-plotTop)
}

// yMs places a latency on a log scale, so a single 5 s outlier does not
// flatten milliseconds into the axis.
func (t *svgTimeline) yMs(ms float64) float64 {
	ms = math.Max(t.msLo, math.Min(ms, t.msHi))
	f := (math.Log10(ms) - math.Log10(t.msLo)) / (math.Log10(t.msHi) - math.Log10(t.msLo))
	return plotBottom - f*(plotBottom-plotTop)
}

func (t *svgTimeline) printf(format string, a ...any) { fmt.Fprintf(t.b, format, a...) }

// timelineSVG draws the load of the drill: requests and failures per
// second, p99 latency, phases as bands and events as markers, with the
// RTO bracketed between the disaster and the first good answer.
func (r *Report) timelineSVG() []byte {
	t := &svgTimeline{b: &bytes.Buffer{}, span: 1, msLo: 1, msHi: 10}
	var maxReq, minMs, maxMs float64
	for _, s := range r.Timeline {
		t.span = math.Max(t.span, s.At+1)
		maxReq = math.Max(maxReq, float64(s.Requests))
		if s.P99 > 0 {
			if minMs == 0 || s.P99 < minMs {
				minMs = s.P99
			}
			maxMs = math.Max(maxMs, s.P99)
		}
	}
	for _, e := range r.Events {
		t.span = math.Max(t.span, e.At)
	}
	for _, p := range r.Phases {
		t.span = math.Max(t.span, r.since(p.End))
	}
	t.reqStep = niceStep(math.Max(maxReq, 4) / 4)
	// The top quarter of the plot is kept clear for the phase names and
	// the RTO brackets.
	t.reqTop = math.Ceil(math.Max(maxReq, 4)/0.72/t.reqStep) * t.reqStep
	if maxMs > 0 {
		t.msLo = math.Pow(10, math.Floor(math.Log10(math.Max(minMs, 0.1))))
		t.msHi = math.Max(math.Pow(10, math.Ceil(math.Log10(maxMs))), t.msLo*10)
	}

	t.printf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="load timeline" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="11">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	t.printf("<title>%s</title>\n", htmlEsc("Timeline of drill "+r.Scenario))
	t.printf(`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#64748b" stroke-width="1.2" stroke-opacity="0.3"/></pattern>` +
		`<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#15803d"/></marker></defs>` + "\n")
	t.printf(`<rect x="0" y="0" width="%.0f" height="%.0f" fill="#ffffff"/>`+"\n", svgWidth, svgHeight)
	r.drawPhases(t)
	t.drawGrid()
	r.drawLoad(t)
	r.drawEvents(t)
	r.drawRTO(t)
	t.drawAxes()
	t.drawLegend()
	if len(r.Timeline) == 0 {
		t.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#6b7280" font-size="14">no load recorded</text>`+"\n",
			(plotLeft+plotRight)/2, (plotTop+plotBottom)/2)
	}
	t.printf("</svg>\n")
	return t.b.Bytes()
}

// since is the time of a moment in seconds from the start of the drill;
// an unset moment is the start.
func (r *Report) since(at time.Time) float64 {
	if at.IsZero() || r.Started.IsZero() {
		return 0
	}
	return math.Max(0, at.Sub(r.Started).Seconds())
}

func (r *Report) drawPhases(t *svgTimeline) {
	for i, p := range r.Phases {
		x0, x1 := t.x(r.since(p.Start)), t.x(r.since(p.End))
		if x1 <= x0 {
			continue
		}
		fill := "#f1f5f9"
		if i%2 == 1 {
			fill = "#ffffff"
		}
		tip := p.Name
		if p.Fault != "" {
			tip += " · fault " + p.Fault
		}
		if p.Masked {
			tip += " · masked"
		}
		t.printf(`<g><title>%s</title><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`,
			htmlEsc(tip), x0, plotTop, x1-x0, plotBottom-plotTop, fill)
		if p.Masked {
			t.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="url(#hatch)"/>`, x0, plotTop, x1-x0, plotBottom-plotTop)
		}
		mid := (x0 + x1) / 2
		if name := fitText(p.Name, x1-x0-6); name != "" {
			t.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="600" fill="#334155">%s</text>`, mid, plotTop+14, htmlEsc(name))
		}
		if p.Masked && x1-x0 > 50 {
			t.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" font-style="italic" font-size="10" fill="#64748b">masked</text>`, mid, plotTop+26)
		}
		t.printf("</g>\n")
	}
}

// fitText shortens s with an ellipsis to fit width, or gives "" when not
// even three characters fit.
func fitText(s string, width float64) string {
	s = strings.Join(strings.Fields(s), " ")
	n := int(width / charWidth)
	r := []rune(s)
	switch {
	case len(r) <= n:
		return s
	case n < 3:
		return ""
	default:
		return string(r[:n-1]) + "…"
	}
}

// maxBuckets bounds the points drawn: about one per three pixels, so a
// drill of hours draws a line and not a solid block of zigzags.
const maxBuckets = 300

// buckets merges the timeline into spans of width seconds: requests
// averaged, failures and p99 taken at their worst second.
func buckets(tl []Second, span float64) (out []Second, width float64) {
	width = math.Max(1, math.Ceil(span/maxBuckets))
	if width == 1 {
		return tl, 1
	}
	var sum, n int64
	for _, s := range tl {
		at := math.Floor(s.At/width) * width
		if len(out) == 0 || out[len(out)-1].At != at {
			sum, n = 0, 0
			out = append(out, Second{At: at})
		}
		b := &out[len(out)-1]
		sum, n = sum+s.Requests, n+1
		b.Requests = sum / n
		b.Failed = max(b.Failed, s.Failed)
		b.P99 = math.Max(b.P99, s.P99)
	}
	return out, width
}

func (r *Report) drawLoad(t *svgTimeline) {
	tl, width := buckets(r.Timeline, t.span)
	if len(tl) == 0 {
		return
	}
	var area, line, p99 strings.Builder
	mid := func(s Second) float64 { return t.x(s.At + width/2) }
	fmt.Fprintf(&area, "M%.1f,%.1f", mid(tl[0]), plotBottom)
	pen := "M"
	for i, s := range tl {
		y := t.yReq(float64(s.Requests))
		fmt.Fprintf(&area, " L%.1f,%.1f", mid(s), y)
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f,%.1f", mid(s), y)
		} else {
			fmt.Fprintf(&line, " L%.1f,%.1f", mid(s), y)
		}
		if s.P99 <= 0 {
			pen = "M" // nothing answered: break the latency line
			continue
		}
		fmt.Fprintf(&p99, "%s%.1f,%.1f ", pen, mid(s), t.yMs(s.P99))
		pen = "L"
	}
	fmt.Fprintf(&area, " L%.1f,%.1f Z", mid(tl[len(tl)-1]), plotBottom)
	t.printf(`<path d="%s" fill="#93c5fd" fill-opacity="0.3" stroke="none"/>`+"\n", area.String())
	t.printf(`<path d="%s" fill="none" stroke="#2563eb" stroke-width="1.5" stroke-linejoin="round"/>`+"\n", line.String())
	for _, s := range tl {
		if s.Failed <= 0 {
			continue
		}
		x0, x1 := t.x(s.At), t.x(s.At+width)
		if gap := 0.3; x1-x0 > 4 { // a thin gap between wide bars only
			x0, x1 = x0+gap, x1-gap
		}
		y := t.yReq(float64(s.Failed))
		what := fmt.Sprintf("t+%.0f s: %d of %d requests failed", s.At, s.Failed, s.Requests)
		if width > 1 {
			what = fmt.Sprintf("t+%.0f–%.0f s: up to %d requests failed a second", s.At, s.At+width, s.Failed)
		}
		t.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#dc2626" fill-opacity="0.85"><title>%s</title></rect>`+"\n",
			x0, y, math.Max(1, x1-x0), plotBottom-y, what)
	}
	if p99.Len() > 0 {
		t.printf(`<path d="%s" fill="none" stroke="#7c3aed" stroke-width="1.5" stroke-linejoin="round"/>`+"\n", strings.TrimSpace(p99.String()))
	}
}

// eventStyle colours an event by kind; the disaster and the recovery's
// milestones are drawn heavier so they stand out.
func eventStyle(kind string) (colour string, heavy bool) {
	switch kind {
	case "disaster":
		return "#dc2626", true
	case "first-good", "full-capacity":
		return "#16a34a", true
	case "restored":
		return "#0891b2", false
	case "fault":
		return "#c2410c", false
	case "clear":
		return "#64748b", false
	case "rollback":
		return "#a21caf", false
	}
	return "#475569", false
}

func (r *Report) drawEvents(t *svgTimeline) {
	// Labels sit in three rows above the plot; each goes to the first row
	// where it does not overlap the previous label, else to the least full
	// row, shifted right past its last label (events seconds apart, as
	// around a disaster, stay readable).
	rows := []float64{plotTop - 44, plotTop - 30, plotTop - 16}
	ends := make([]float64, len(rows))
	for i := range ends {
		ends[i] = math.Inf(-1)
	}
	for _, e := range r.Events {
		x := t.x(e.At)
		label := fitText(e.Kind, 120)
		w := float64(len([]rune(label)))*charWidth + 6
		left := math.Max(2, math.Min(x-w/2, svgWidth-2-w))
		slot, free := 0, false
		for i := range rows {
			if ends[i] < left {
				slot, free = i, true
				break
			}
			if ends[i] < ends[slot] {
				slot = i
			}
		}
		if !free {
			left = math.Min(ends[slot]+2, svgWidth-2-w)
		}
		ends[slot] = left + w
		colour, heavy := eventStyle(e.Kind)
		width, weight := 1.0, "normal"
		if heavy {
			width, weight = 2, "700"
		}
		t.printf(`<g><title>%s</title>`, htmlEsc(fmt.Sprintf("t+%.1f s · %s · %s: %s", e.At, e.Phase, e.Kind, e.Message)))
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000" stroke-opacity="0" stroke-width="8"/>`, x, x, rows[slot]+3, plotBottom)
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%.0f" stroke-dasharray="4 3"/>`, x, x, rows[slot]+3, plotBottom, colour, width)
		t.printf(`<text x="%.1f" y="%.1f" fill="%s" font-weight="%s">%s</text></g>`+"\n", left+3, rows[slot], colour, weight, htmlEsc(label))
	}
}

// drawRTO brackets the recovery: disaster → first good answer ("RTO"),
// and below it disaster → full capacity.
func (r *Report) drawRTO(t *svgTimeline) {
	at := map[string]float64{}
	for _, e := range r.Events {
		if _, seen := at[e.Kind]; !seen {
			at[e.Kind] = e.At
		}
	}
	if rec := r.Recovery; rec != nil {
		for kind, when := range map[string]time.Time{"disaster": rec.DisasterAt,
			"first-good": rec.FirstGoodAt, "full-capacity": rec.FullCapacityAt} {
			if _, seen := at[kind]; !seen && !when.IsZero() {
				at[kind] = r.since(when)
			}
		}
	}
	from, ok := at["disaster"]
	if !ok {
		return
	}
	for i, m := range []struct{ kind, name string }{{"first-good", "RTO"}, {"full-capacity", "RTO full"}} {
		to, ok := at[m.kind]
		if !ok || to <= from {
			continue
		}
		secs := to - from
		if r.Recovery != nil && i == 0 && r.Recovery.RTOFirst > 0 {
			secs = r.Recovery.RTOFirst
		} else if r.Recovery != nil && i == 1 && r.Recovery.RTOFull > 0 {
			secs = r.Recovery.RTOFull
		}
		x0, x1, y := t.x(from), t.x(to), plotTop+46+float64(i)*26
		label := fmt.Sprintf("%s %s", m.name, shortSeconds(secs))
		w := float64(len(label))*charWidth + 8
		t.printf(`<g><title>%s</title>`, htmlEsc(fmt.Sprintf("%s: disaster at t+%.1f s → %s at t+%.1f s", label, from, m.kind, to)))
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#15803d" stroke-width="1.5" marker-start="url(#arrow)" marker-end="url(#arrow)"/>`, x0+1, x1-1, y, y)
		t.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="15" rx="3" fill="#ffffff" fill-opacity="0.9" stroke="#15803d" stroke-width="0.8"/>`, (x0+x1)/2-w/2, y-19, w)
		t.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="700" fill="#15803d">%s</text></g>`+"\n", (x0+x1)/2, y-8, htmlEsc(label))
	}
}

func shortSeconds(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f s", v)
	}
	return humanSeconds(v)
}
