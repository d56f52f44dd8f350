package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// at parses a UTC time; items are named by their position in the input.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func items(times ...string) []Item {
	out := make([]Item, len(times))
	for i, s := range times {
		out[i] = Item{ID: fmt.Sprintf("s%02d", i), Time: at(s)}
	}
	return out
}

var now = at("2030-01-01T00:00:00Z")

// kept renders the decisions as "id:reason+reason" for kept items, newest
// first, so a table row states the whole outcome.
func kept(ds []Decision) string {
	var parts []string
	for _, d := range ds {
		if d.Keep {
			parts = append(parts, d.Item.ID+":"+strings.Join(d.Reasons, "+"))
		}
	}
	return strings.Join(parts, " ")
}

func TestApply(t *testing.T) {
	fiveDays := items(
		"2025-03-01T10:00:00Z", "2025-03-01T18:00:00Z", // s00 s01
		"2025-03-02T09:00:00Z",                         // s02
		"2025-03-03T09:00:00Z", "2025-03-03T21:00:00Z", // s03 s04
		"2025-03-04T12:00:00Z",                         // s05
		"2025-03-05T08:00:00Z", "2025-03-05T08:30:00Z", // s06 s07
	)
	hours := items("2025-03-05T10:05:00Z", "2025-03-05T10:40:00Z", "2025-03-05T11:10:00Z", "2025-03-05T12:00:00Z", "2025-03-05T12:30:00Z")
	// ISO week 1 of 2025 runs from Monday 2024-12-30 to Sunday 2025-01-05.
	weeks := items("2024-12-22T12:00:00Z", "2024-12-30T12:00:00Z", "2025-01-02T12:00:00Z", "2025-01-06T12:00:00Z")
	months := items("2023-11-10T00:00:00Z", "2024-06-01T00:00:00Z", "2024-06-20T00:00:00Z", "2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z")
	tagged := []Item{
		{ID: "a", Time: at("2025-01-01T00:00:00Z"), Tags: []string{"prod", "release"}},
		{ID: "b", Time: at("2025-01-02T00:00:00Z"), Tags: []string{"prod"}},
		{ID: "c", Time: at("2025-01-03T00:00:00Z"), Tags: []string{"release"}},
		{ID: "d", Time: at("2025-01-04T00:00:00Z")},
	}

	cases := []struct {
		name  string
		items []Item
		p     Policy
		want  string
	}{
		{"last", fiveDays, Policy{Last: 3}, "s07:last s06:last s05:last"},
		{"last more than there are", hours, Policy{Last: 10}, "s04:last s03:last s02:last s01:last s00:last"},
		{"last unlimited", hours[:2], Policy{Last: Unlimited}, "s01:last s00:last"},
		{"hourly", hours, Policy{Hourly: 2}, "s04:hourly s02:hourly"},
		{"daily takes the newest of each day", fiveDays, Policy{Daily: 3}, "s07:daily s05:daily s04:daily"},
		{"daily beyond the history keeps the oldest", fiveDays, Policy{Daily: 10}, "s07:daily s05:daily s04:daily s02:daily s01:daily s00:oldest daily"},
		{"daily unlimited keeps each day, no oldest", fiveDays, Policy{Daily: Unlimited}, "s07:daily s05:daily s04:daily s02:daily s01:daily"},
		{"weekly across a year boundary", weeks, Policy{Weekly: 2}, "s03:weekly s02:weekly"},
		{"weekly beyond the history", weeks, Policy{Weekly: 5}, "s03:weekly s02:weekly s00:weekly"},
		{"monthly", months, Policy{Monthly: 3}, "s04:monthly s03:monthly s02:monthly"},
		{"yearly", months, Policy{Yearly: 2}, "s04:yearly s03:yearly"},
		{"yearly beyond the history", months, Policy{Yearly: 5}, "s04:yearly s03:yearly s00:yearly"},
		{"within the newest, not now", fiveDays, Policy{Within: 36 * time.Hour}, "s07:within 36h0m0s s06:within 36h0m0s s05:within 36h0m0s s04:within 36h0m0s"},
		{"tags: any entry, all tags of an entry", tagged, Policy{Tags: []string{"prod,release", "nightly"}}, "a:tag prod,release"},
		{"tags: single tag", tagged, Policy{Tags: []string{"release"}}, "c:tag release a:tag release"},
		{"combined rules give all reasons", fiveDays, Policy{Last: 1, Daily: 2, Weekly: 1, Monthly: 1},
			"s07:last+daily+weekly+monthly s05:daily"},
		{"combined with tags and within", tagged, Policy{Last: 1, Tags: []string{"prod"}, Within: 24 * time.Hour},
			"d:last+within 24h0m0s c:within 24h0m0s b:tag prod a:tag prod"},
		{"nothing matches", tagged, Policy{Tags: []string{"none"}}, ""},
		{"no items", nil, Policy{Daily: 7}, ""},
		{"one item", hours[:1], Policy{Daily: 7}, "s00:daily"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.Location = time.UTC
			c.p.Now = now
			ds := Apply(c.items, c.p)
			if len(ds) != len(c.items) {
				t.Fatalf("%d decisions for %d items", len(ds), len(c.items))
			}
			if got := kept(ds); got != c.want {
				t.Fatalf("kept %q\nwant %q", got, c.want)
			}
			for i := 1; i < len(ds); i++ {
				if ds[i].Item.Time.After(ds[i-1].Item.Time) {
					t.Fatalf("decision %d is newer than decision %d", i, i-1)
				}
			}
			for _, d := range ds {
				if !d.Keep && len(d.Reasons) > 0 {
					t.Fatalf("%s forgotten with reasons %v", d.Item.ID, d.Reasons)
				}
			}
		})
	}
}

func TestEmptyPolicyKeepsEverything(t *testing.T) {
	if !(Policy{}).Empty() || !(Policy{Location: time.UTC, Now: now}).Empty() {
		t.Fatal("a policy without rules is not empty")
	}
	for _, p := range []Policy{{Last: 1}, {Hourly: 1}, {Daily: 1}, {Weekly: 1}, {Monthly: 1}, {Yearly: 1}, {Within: time.Hour}, {Tags: []string{"x"}}, {Daily: Unlimited}} {
		if p.Empty() {
			t.Fatalf("%+v is empty", p)
		}
	}
	ds := Apply(items("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"), Policy{})
	for _, d := range ds {
		if !d.Keep {
			t.Fatalf("empty policy forgets %s", d.Item.ID)
		}
	}
}

// Ties in time are broken by ID, whatever order the items come in.
func TestTiesAreDeterministic(t *testing.T) {
	same := at("2025-05-05T05:05:05Z")
	a := []Item{{ID: "aaa", Time: same}, {ID: "bbb", Time: same}, {ID: "ccc", Time: same.Add(-time.Hour)}}
	b := []Item{a[2], a[1], a[0]}
	for _, in := range [][]Item{a, b} {
		ds := Apply(in, Policy{Last: 1, Daily: 1, Location: time.UTC, Now: now})
		if got := kept(ds); got != "bbb:last+daily" {
			t.Fatalf("input %v: kept %q", in, got)
		}
	}
	if a[0].ID != "aaa" {
		t.Fatal("Apply reordered its input")
	}
}

// Days are the days of the given zone: 22:30 UTC is already tomorrow at
// UTC+2.
func TestCalendarPeriodsUseTheLocation(t *testing.T) {
	in := items("2025-03-01T10:00:00Z", "2025-03-01T21:00:00Z", "2025-03-01T22:30:00Z")
	plus2 := time.FixedZone("UTC+2", 2*3600)
	if got := kept(Apply(in, Policy{Daily: 2, Location: plus2, Now: now})); got != "s02:daily s01:daily" {
		t.Fatalf("at UTC+2: %q", got)
	}
	if got := kept(Apply(in, Policy{Daily: 2, Location: time.UTC, Now: now})); got != "s02:daily s00:oldest daily" {
		t.Fatalf("at UTC: %q", got)
	}
}

// A snapshot from the future is kept, takes no period's place and does not
// anchor Within.
func TestFutureSnapshots(t *testing.T) {
	in := items("2025-03-01T12:00:00Z", "2025-03-02T12:00:00Z", "2025-03-03T12:00:00Z", "2031-01-01T00:00:00Z")
	p := Policy{Daily: 1, Within: 30 * time.Hour, Location: time.UTC, Now: now}
	want := "s03:in the future s02:within 30h0m0s+daily s01:within 30h0m0s"
	if got := kept(Apply(in, p)); got != want {
		t.Fatalf("kept %q\nwant %q", got, want)
	}
}

func TestPolicyString(t *testing.T) {
	p := Policy{Last: 2, Daily: 7, Weekly: Unlimited, Within: time.Hour, Tags: []string{"a,b", "c"}}
	want := "keep 2 last, 7 daily, all weekly, all within 1h0m0s, tagged a,b or c"
	if got := p.String(); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if !slices.Equal([]string{(Policy{}).String()}, []string{"empty policy"}) {
		t.Fatal("empty policy string")
	}
}
