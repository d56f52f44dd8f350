package plan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Seconds is a length of time in seconds. A plan spans milliseconds (a
// replica's repair) to centuries (the mean time between site disasters),
// beyond what time.Duration holds, so it is a float.
type Seconds float64

// Lengths of time used by plans. A year is 365 days, the convention of
// availability tables (99.9% is 8.76 hours of downtime a year).
const (
	Minute Seconds = 60
	Hour   Seconds = 3600
	Day    Seconds = 24 * Hour
	Year   Seconds = 365 * Day
)

// Duration converts to a time.Duration, saturating beyond its range.
func (s Seconds) Duration() time.Duration {
	ns := float64(s) * 1e9
	switch {
	case ns >= math.MaxInt64:
		return time.Duration(math.MaxInt64)
	case ns <= math.MinInt64:
		return time.Duration(math.MinInt64)
	}
	return time.Duration(ns)
}

// String writes the time for people, in the largest unit that keeps it
// at or above 1, with four significant digits: "200 ms", "116.7 min",
// "5.03 d".
func (s Seconds) String() string {
	v := float64(s)
	units := []struct {
		size Seconds
		name string
	}{{Year, "y"}, {Day, "d"}, {Hour, "h"}, {Minute, "min"}, {1, "s"}, {1e-3, "ms"}, {1e-6, "µs"}}
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64) + " s"
	}
	for _, u := range units {
		if math.Abs(v) >= float64(u.size) || u.size == 1e-6 {
			return trimFloat(v/float64(u.size), 4) + " " + u.name
		}
	}
	panic("unreachable")
}

// trimFloat writes v with at most digits significant digits and no
// exponent below a million.
func trimFloat(v float64, digits int) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	if math.Abs(r) >= 1e6 {
		return strconv.FormatFloat(r, 'g', digits, 64)
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// parseDuration reads a Go duration ("200ms", "4h", "1h30m") or a number
// of days or years ("30d", "0.5y"), which Go durations lack and plans need.
func parseDuration(s string) (Seconds, error) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		size   Seconds
	}{{"d", Day}, {"y", Year}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			if v, err := parseFinite(num); err == nil {
				return Seconds(v) * u.size, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (such as 200ms, 4h, 30d or 10y)", s)
	}
	return Seconds(d.Seconds()), nil
}

// parseFinite reads a decimal number, refusing NaN and infinities, which
// ParseFloat accepts.
func parseFinite(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// Byte units: decimal (kB, MB, ...) and binary (KiB, MiB, ...), matched
// without regard to case.
var byteUnits = []struct {
	name string
	size float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
}

// parseBytes reads a size: a number of bytes, or a number and a unit
// ("2GiB", "500 MB").
func parseBytes(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	size := 1.0
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, size = num, u.size
			break
		}
	}
	v, err := parseFinite(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (such as 1073741824, 500MB or 2GiB)", s)
	}
	return v * size, nil
}

// parseThroughput reads bytes per second: a size, optionally with "/s".
func parseThroughput(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t, _ = strings.CutSuffix(t, "/s")
	v, err := parseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a throughput (such as 100MiB/s or 1GB/s)", s)
	}
	return v, nil
}

// formatBytes writes a size for people in binary units.
func formatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for math.Abs(n) >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return trimFloat(n, 4) + " " + units[i]
}

// num writes a number inside a substituted formula: six significant
// digits, enough to check by hand.
func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// secs writes a time inside a substituted formula, in seconds.
func secs(s Seconds) string { return num(float64(s)) + " s" }
