package drill

import (
	"fmt"
	"math"
)

// The frame of the timeline: grid, axes with their ticks, and the legend.

func (t *svgTimeline) drawGrid() {
	for v := t.reqStep; v <= t.reqTop*1.0001; v += t.reqStep {
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e2e8f0" stroke-width="1"/>`+"\n", plotLeft, plotRight, t.yReq(v), t.yReq(v))
	}
}

func (t *svgTimeline) drawAxes() {
	t.printf(`<g stroke="#475569" stroke-width="1"><line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/><line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/></g>`+"\n",
		plotLeft, plotRight, plotBottom, plotBottom, plotLeft, plotLeft, plotTop, plotBottom, plotRight, plotRight, plotTop, plotBottom)
	major, minor, unit, name := xTicks(t.span)
	if minor > 0 {
		for v := 0.0; v <= t.span; v += minor {
			t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#94a3b8"/>`, t.x(v), t.x(v), plotBottom, plotBottom+3)
		}
		t.printf("\n")
	}
	for v := 0.0; v <= t.span; v += major {
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#475569"/><text class="xtick" x="%.1f" y="%.1f" text-anchor="middle" fill="#334155">%g</text>`+"\n",
			t.x(v), t.x(v), plotBottom, plotBottom+6, t.x(v), plotBottom+18, v/unit)
	}
	t.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#334155">%s from the start</text>`+"\n", (plotLeft+plotRight)/2, plotBottom+36, name)
	for v := 0.0; v <= t.reqTop*1.0001; v += t.reqStep {
		t.printf(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#2563eb">%g</text>`, plotLeft-6, t.yReq(v)+4, v)
	}
	for _, ms := range msTicks(t.msLo, t.msHi) {
		label := fmt.Sprintf("%g ms", ms)
		if ms >= 1000 {
			label = fmt.Sprintf("%g s", ms/1000)
		}
		t.printf(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#7c3aed"/><text x="%.1f" y="%.1f" fill="#7c3aed">%s</text>`,
			plotRight, plotRight+4, t.yMs(ms), t.yMs(ms), plotRight+6, t.yMs(ms)+4, label)
	}
	t.printf("\n")
	t.printf(`<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle" fill="#2563eb">requests / s</text>`, (plotTop+plotBottom)/2)
	t.printf(`<text transform="translate(%.1f %.1f) rotate(90)" text-anchor="middle" fill="#7c3aed">p99 latency (log scale)</text>`+"\n", svgWidth-10, (plotTop+plotBottom)/2)
}

func (t *svgTimeline) drawLegend() {
	y, x := svgHeight-22, plotLeft
	item := func(swatch, label string) {
		t.printf(`<g transform="translate(%.1f %.1f)">%s<text x="24" y="4" fill="#334155">%s</text></g>`, x, y, swatch, label)
		x += 24 + float64(len(label))*legendCharWidth + 22
	}
	item(`<rect x="0" y="-6" width="18" height="10" fill="#93c5fd" fill-opacity="0.6" stroke="#2563eb"/>`, "requests / s")
	item(`<rect x="0" y="-6" width="18" height="10" fill="#dc2626" fill-opacity="0.85"/>`, "failed / s")
	item(`<line x1="0" x2="18" y1="0" y2="0" stroke="#7c3aed" stroke-width="2"/>`, "p99 latency (right axis, log scale)")
	item(`<rect x="0" y="-6" width="18" height="10" fill="url(#hatch)" stroke="#94a3b8"/>`, "masked phase")
	item(`<line x1="9" x2="9" y1="-7" y2="5" stroke="#c2410c" stroke-dasharray="3 2"/>`, "event (hover for details)")
	item(`<line x1="1" x2="17" y1="0" y2="0" stroke="#15803d" stroke-width="1.5" marker-start="url(#arrow)" marker-end="url(#arrow)"/>`, "RTO")
	t.printf("\n")
}

// xTicks chooses labelled ticks every major seconds (at most ten over the
// span), thin unlabelled ones every minor, and whether to label in seconds
// or minutes.
func xTicks(span float64) (major, minor, unit float64, name string) {
	steps := [][2]float64{{1, 0}, {2, 1}, {5, 1}, {10, 2}, {15, 5}, {30, 5}, {60, 10}, {120, 30},
		{300, 60}, {600, 120}, {900, 300}, {1800, 300}, {3600, 600}}
	major, minor = 7200, 1800
	for _, s := range steps {
		if span/s[0] <= 10 {
			major, minor = s[0], s[1]
			break
		}
	}
	for span/major > 10 { // drills of days: keep the labels few
		major, minor = major*2, major
	}
	if major >= 60 {
		return major, minor, 60, "minutes"
	}
	return major, minor, 1, "seconds"
}

// msTicks are the latencies labelled on the log axis: each decade, and
// 2 and 5 between them when there are only one or two decades.
func msTicks(lo, hi float64) []float64 {
	var out []float64
	few := hi/lo <= 100
	for d := lo; d <= hi*1.0001; d *= 10 {
		out = append(out, d)
		if few && d*10 <= hi*1.0001 {
			out = append(out, 2*d, 5*d)
		}
	}
	return out
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	exp := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if v <= m*exp*1.0001 {
			return m * exp
		}
	}
	return 10 * exp
}
