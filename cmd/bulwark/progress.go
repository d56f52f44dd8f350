package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressState is where a long command is: Done of Total units (bytes,
// packs, blobs), and files when the command counts them.
type progressState struct {
	Done, Total           int64
	Unit                  string
	FilesDone, FilesTotal int64
}

// progress shows a long command's progress on stderr: on a terminal a
// one-line bar with rate and ETA redrawn in place; otherwise, or with
// --json, one JSON line per second that scripts can follow.
type progress struct {
	w        io.Writer
	bar      bool
	width    int
	phase    string
	start    time.Time
	interval time.Duration

	mu      sync.Mutex
	last    time.Time
	drawn   bool
	current progressState
}

// newProgress starts reporting the phase (backup, restore, verify, ...).
func newProgress(g *globals, phase string) *progress {
	p := &progress{w: os.Stderr, phase: phase, start: time.Now(), interval: time.Second}
	fd := int(os.Stderr.Fd())
	if !g.json && term.IsTerminal(fd) {
		p.bar, p.interval = true, 100*time.Millisecond
		if w, _, err := term.GetSize(fd); err == nil && w > 20 {
			p.width = w
		} else {
			p.width = 80
		}
	}
	return p
}

// setPhase names what follows (verify's structure check, then its data).
func (p *progress) setPhase(phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase != p.phase {
		p.phase, p.start, p.last = phase, time.Now(), time.Time{}
	}
}

// update records the state and shows it if the interval has passed.
func (p *progress) update(s progressState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = s
	now := time.Now()
	if now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	p.show(now)
}

// done shows the final state and ends the bar's line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar {
		if p.drawn {
			p.show(time.Now())
			fmt.Fprintln(p.w)
		}
		return
	}
	if !p.last.IsZero() {
		p.show(time.Now())
	}
}

func (p *progress) show(now time.Time) {
	s := p.current
	elapsed := now.Sub(p.start)
	var rate float64
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(s.Done) / secs
	}
	eta := -1.0
	if rate > 0 && s.Total >= s.Done {
		eta = float64(s.Total-s.Done) / rate
	}
	if !p.bar {
		line := progressLine{Type: "progress", Phase: p.phase, Done: s.Done, Total: s.Total, Unit: s.Unit,
			FilesDone: s.FilesDone, FilesTotal: s.FilesTotal, Rate: rate, ETASeconds: eta, ElapsedSeconds: elapsed.Seconds()}
		b, _ := json.Marshal(line)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	text := p.barText(s, rate, eta)
	fmt.Fprintf(p.w, "\r%s\x1b[K", text)
	p.drawn = true
}

// progressLine is one JSON progress line.
type progressLine struct {
	Type           string  `json:"type"`
	Phase          string  `json:"phase"`
	Done           int64   `json:"done"`
	Total          int64   `json:"total"`
	Unit           string  `json:"unit"`
	FilesDone      int64   `json:"files_done,omitempty"`
	FilesTotal     int64   `json:"files_total,omitempty"`
	Rate           float64 `json:"rate"`
	ETASeconds     float64 `json:"eta_seconds"` // -1 when unknown
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

func (p *progress) barText(s progressState, rate, eta float64) string {
	frac := 0.0
	if s.Total > 0 {
		frac = min(1, float64(s.Done)/float64(s.Total))
	}
	amount := fmt.Sprintf("%s / %s", formatUnits(s.Done, s.Unit), formatUnits(s.Total, s.Unit))
	speed := formatUnits(int64(rate), s.Unit) + "/s"
	etaText := "ETA --:--"
	if eta >= 0 {
		etaText = "ETA " + formatClock(time.Duration(eta*float64(time.Second)))
	}
	files := ""
	if s.FilesTotal > 0 {
		files = fmt.Sprintf("  %d/%d files", s.FilesDone, s.FilesTotal)
	}
	tail := fmt.Sprintf(" %5.1f%%  %s  %s  %s%s", 100*frac, amount, speed, etaText, files)
	head := p.phase + " "
	barWidth := min(30, p.width-len(head)-len(tail)-3)
	if barWidth < 5 {
		return clipText(head+tail, p.width-1)
	}
	filled := int(frac * float64(barWidth))
	return clipText(head+"["+strings.Repeat("=", filled)+strings.Repeat(" ", barWidth-filled)+"]"+tail, p.width-1)
}

func clipText(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}

func formatUnits(n int64, unit string) string {
	if unit == "bytes" || unit == "" {
		return humanBytes(n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

func formatClock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
