package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Unlimited as a count keeps one snapshot in every period that has one.
const Unlimited = -1

// Policy says which snapshots to keep; a snapshot is kept when any rule
// keeps it. Counts are periods that have snapshots, not calendar periods:
// Daily 7 keeps the newest snapshot of each of the 7 most recent days on
// which a snapshot was taken. A count of Unlimited (-1) keeps every period.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	// Within keeps every snapshot taken within this duration before the
	// newest snapshot (not before now: a site that stopped backing up
	// keeps its last snapshots).
	Within time.Duration
	// Tags keeps every snapshot that carries a tag list: an entry "a,b"
	// matches snapshots that have both a and b.
	Tags []string
	// Location is the time zone of the calendar periods; nil means local
	// time, as people think of days.
	Location *time.Location
	// Now is the time the policy is applied at; zero means time.Now().
	// Snapshots after it are kept: a clock that ran ahead must not make
	// the real history look older than it is.
	Now time.Time
}

// Item is one snapshot as the policy sees it.
type Item struct {
	ID   string
	Time time.Time
	Tags []string
}

// Decision is what the policy does with one snapshot and why.
type Decision struct {
	Item    Item
	Keep    bool
	Reasons []string // e.g. "last", "daily", "within 24h0m0s", "oldest monthly"
}

// Empty reports whether the policy has no rule at all. Callers must refuse
// to forget with an empty policy: it would keep nothing.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && p.Within == 0 && len(p.Tags) == 0
}

// String describes the policy for people, e.g. "keep 7 daily, 4 weekly".
func (p Policy) String() string {
	if p.Empty() {
		return "empty policy"
	}
	var parts []string
	count := func(n int, what string) {
		switch {
		case n == Unlimited:
			parts = append(parts, "all "+what)
		case n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	count(p.Last, "last")
	for _, r := range calendarRules(p) {
		count(r.count, r.name)
	}
	if p.Within > 0 {
		parts = append(parts, "all within "+p.Within.String())
	}
	if len(p.Tags) > 0 {
		parts = append(parts, "tagged "+strings.Join(p.Tags, " or "))
	}
	return "keep " + strings.Join(parts, ", ")
}

// calendarRule buckets snapshots by a calendar period; the newest snapshot
// of each of the count most recent periods is kept.
type calendarRule struct {
	name   string
	count  int
	period func(time.Time) int
}

func calendarRules(p Policy) []calendarRule {
	return []calendarRule{
		{"hourly", p.Hourly, func(t time.Time) int { return ((t.Year()*100+int(t.Month()))*100+t.Day())*100 + t.Hour() }},
		{"daily", p.Daily, func(t time.Time) int { return (t.Year()*100+int(t.Month()))*100 + t.Day() }},
		{"weekly", p.Weekly, func(t time.Time) int { y, w := t.ISOWeek(); return y*100 + w }},
		{"monthly", p.Monthly, func(t time.Time) int { return t.Year()*100 + int(t.Month()) }},
		{"yearly", p.Yearly, func(t time.Time) int { return t.Year() }},
	}
}

// Apply decides for each item whether p keeps it, newest first (ties in
// time broken by ID, descending, so the result does not depend on the
// input order). An empty policy keeps everything, with no reasons.
func Apply(items []Item, p Policy) []Decision {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b Item) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	out := make([]Decision, len(sorted))
	for i, it := range sorted {
		out[i] = Decision{Item: it, Keep: p.Empty()}
	}
	if p.Empty() || len(out) == 0 {
		return out
	}
	keep := func(i int, reason string) {
		out[i].Keep = true
		out[i].Reasons = append(out[i].Reasons, reason)
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}

	// The newest snapshot not in the future anchors Within.
	newest := -1
	for i, d := range out {
		if d.Item.Time.After(now) {
			keep(i, "in the future")
		} else if newest < 0 {
			newest = i
		}
	}
	for i, d := range out {
		if p.Last == Unlimited || i < p.Last {
			keep(i, "last")
		}
		if p.Within > 0 && newest >= 0 && i >= newest && !d.Item.Time.Before(out[newest].Item.Time.Add(-p.Within)) {
			keep(i, "within "+p.Within.String())
		}
		if tag := matchingTags(d.Item.Tags, p.Tags); tag != "" {
			keep(i, "tag "+tag)
		}
	}
	if newest >= 0 {
		for _, r := range calendarRules(p) {
			applyCalendar(out[newest:], r, loc, func(i int, reason string) { keep(newest+i, reason) })
		}
	}
	return out
}

// applyCalendar keeps the newest item of each period, newest periods
// first, while the rule's count lasts; out holds no snapshots from the
// future, which must not take a period's place. If the count outlasts the history,
// the oldest snapshot is kept too, so the history kept reaches as far back
// as the snapshots do.
func applyCalendar(out []Decision, r calendarRule, loc *time.Location, keep func(int, string)) {
	if r.count == 0 {
		return
	}
	left := r.count
	last, seen := 0, false
	for i, d := range out {
		if left == 0 {
			return
		}
		period := r.period(d.Item.Time.In(loc))
		if seen && period == last {
			continue
		}
		keep(i, r.name)
		last, seen = period, true
		if left > 0 {
			left--
		}
	}
	if left > 0 {
		if oldest := len(out) - 1; !slices.Contains(out[oldest].Reasons, r.name) {
			keep(oldest, "oldest "+r.name)
		}
	}
}

// matchingTags returns the first entry of want (a comma-separated list of
// tags, all required) that have satisfies, or "".
func matchingTags(have, want []string) string {
	for _, entry := range want {
		all := true
		for _, tag := range strings.Split(entry, ",") {
			if tag = strings.TrimSpace(tag); tag != "" && !slices.Contains(have, tag) {
				all = false
				break
			}
		}
		if all && strings.TrimSpace(entry) != "" {
			return entry
		}
	}
	return ""
}
