package plan

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrInvalid: an assumption or a topology does not make sense (a zero
// MTBF, k above n, an unknown key). Every *FieldError is one.
var ErrInvalid = errors.New("invalid plan input")

// FieldError is one invalid assumption. Line is its line in the
// assumptions file, 0 when it came from a flag or from code.
type FieldError struct {
	Line  int
	Field string // the assumption's key, e.g. replica.mtbf
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

// Is makes every FieldError an ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Assumptions are the failure and recovery figures a plan rests on. The
// JSON names carry their units.
type Assumptions struct {
	ReplicaMTBF Seconds `json:"replicaMtbfSeconds"` // mean time between failures of one replica
	ReplicaMTTR Seconds `json:"replicaMttrSeconds"` // mean time to bring it back
	// ZoneFailuresPerYear is how often one zone goes down as a whole,
	// taking its replicas with it; 0: zones never fail.
	ZoneFailuresPerYear float64 `json:"zoneFailuresPerYear"`
	ZoneMTTR            Seconds `json:"zoneMttrSeconds"`
	// SiteDisastersPerYear is how often the whole site is lost (fire,
	// region outage, deleted bucket): what backups protect against.
	SiteDisastersPerYear float64 `json:"siteDisastersPerYear"`
	BackupDuration       Seconds `json:"backupDurationSeconds"` // δ: time to take one backup
	// BackupInterval is the scheduled time from the start of one backup to
	// the start of the next; 0 plans with the Daly optimum.
	BackupInterval    Seconds `json:"backupIntervalSeconds"`
	RestoreSize       float64 `json:"restoreSizeBytes"`                // bytes fetched and restored after a disaster
	RestoreThroughput float64 `json:"restoreThroughputBytesPerSecond"` // of fetching and restoring them
	RestoreStartup    Seconds `json:"restoreStartupSeconds"`           // restored site → replicas serving
	FirstInference    Seconds `json:"firstInferenceSeconds"`           // serving → first good answer
	// K is how many replicas must be up for the deployment to serve; 0
	// takes it from the deployment (1, or the vote's majority).
	K int `json:"servingK"`
	// Sources says where each key's value came from ("file", "flag");
	// keys it lacks have their default.
	Sources map[string]string `json:"sources"`
}

// DefaultReplicaMTTR is the controller's measured time to bring a
// crashed replica back (SIGKILL → ready), median of runs in
// docs/performance.md.
const DefaultReplicaMTTR Seconds = 0.2

// Defaults are the assumptions of a plan that states none. Only the
// replica MTTR is measured; the others are round figures to replace with
// your own (docs/plan.md says why each).
func Defaults() Assumptions {
	return Assumptions{
		ReplicaMTBF:          30 * Day,
		ReplicaMTTR:          DefaultReplicaMTTR,
		ZoneFailuresPerYear:  1,
		ZoneMTTR:             4 * Hour,
		SiteDisastersPerYear: 0.1,
		BackupDuration:       5 * Minute,
		RestoreSize:          1 << 30,
		RestoreThroughput:    100 << 20,
		RestoreStartup:       2,
		FirstInference:       1,
		Sources:              map[string]string{},
	}
}

// Key describes one assumption: its key in the file (section.name), what
// it means, and how it is set and shown.
type Key struct {
	Name string // e.g. replica.mtbf
	Help string
	set  func(a *Assumptions, v string) error
	show func(a *Assumptions) string
}

// assign parses v into *dst, leaving *dst alone when v does not parse.
func assign[T any](dst *T, parse func(string) (T, error), v string) error {
	x, err := parse(v)
	if err == nil {
		*dst = x
	}
	return err
}

func durationKey(name, help string, field func(*Assumptions) *Seconds) Key {
	return Key{Name: name, Help: help,
		set:  func(a *Assumptions, v string) error { return assign(field(a), parseDuration, v) },
		show: func(a *Assumptions) string { return field(a).String() }}
}

func rateKey(name, help string, field func(*Assumptions) *float64) Key {
	return Key{Name: name, Help: help,
		set:  func(a *Assumptions, v string) error { return assign(field(a), parseFinite, v) },
		show: func(a *Assumptions) string { return trimFloat(*field(a), 6) + " per year" }}
}

// Keys lists every assumption, in the order of the file's sections.
func Keys() []Key { return keys }

var keys = []Key{
	durationKey("replica.mtbf", "mean time between failures of one replica", func(a *Assumptions) *Seconds { return &a.ReplicaMTBF }),
	durationKey("replica.mttr", "mean time to repair a replica (default: the controller's measured restart)", func(a *Assumptions) *Seconds { return &a.ReplicaMTTR }),
	rateKey("zone.failuresPerYear", "outages of one zone per year (0: zones never fail)", func(a *Assumptions) *float64 { return &a.ZoneFailuresPerYear }),
	durationKey("zone.mttr", "mean length of a zone outage", func(a *Assumptions) *Seconds { return &a.ZoneMTTR }),
	rateKey("site.disastersPerYear", "losses of the whole site per year (what backups protect against)", func(a *Assumptions) *float64 { return &a.SiteDisastersPerYear }),
	durationKey("backup.duration", "time to take one backup (δ)", func(a *Assumptions) *Seconds { return &a.BackupDuration }),
	{Name: "backup.interval", Help: "scheduled time between backup starts (0: the Daly optimum)",
		set: func(a *Assumptions, v string) error { return assign(&a.BackupInterval, parseDuration, v) },
		show: func(a *Assumptions) string {
			if a.BackupInterval == 0 {
				return "the Daly optimum"
			}
			return a.BackupInterval.String()
		}},
	{Name: "restore.size", Help: "bytes to fetch and restore after a disaster (such as 2GiB)",
		set:  func(a *Assumptions, v string) error { return assign(&a.RestoreSize, parseBytes, v) },
		show: func(a *Assumptions) string { return formatBytes(a.RestoreSize) }},
	{Name: "restore.throughput", Help: "restore throughput (such as 100MiB/s)",
		set:  func(a *Assumptions, v string) error { return assign(&a.RestoreThroughput, parseThroughput, v) },
		show: func(a *Assumptions) string { return formatBytes(a.RestoreThroughput) + "/s" }},
	durationKey("restore.startup", "time from a restored site to serving replicas", func(a *Assumptions) *Seconds { return &a.RestoreStartup }),
	durationKey("restore.firstInference", "time from serving replicas to the first good answer", func(a *Assumptions) *Seconds { return &a.FirstInference }),
	{Name: "serving.k", Help: "replicas that must be up to serve (0: 1, or the vote's majority when the deployment votes)",
		set: func(a *Assumptions, v string) error {
			k, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			a.K = k
			return nil
		},
		show: func(a *Assumptions) string {
			if a.K == 0 {
				return "from the deployment"
			}
			return strconv.Itoa(a.K)
		}},
}

func lookup(name string) (Key, bool) {
	for _, k := range keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}

// Set sets one assumption from its text, as the file or a flag writes it,
// and records where it came from. An unknown key or unreadable value is a
// *FieldError; ranges are Validate's.
func (a *Assumptions) Set(key, value, source string) error {
	k, ok := lookup(key)
	if !ok {
		return &FieldError{Field: key, Msg: "unknown assumption"}
	}
	if err := k.set(a, value); err != nil {
		return &FieldError{Field: key, Msg: err.Error()}
	}
	if a.Sources == nil {
		a.Sources = map[string]string{}
	}
	a.Sources[key] = source
	return nil
}

// Show writes one assumption's value for people ("" for an unknown key).
func (a *Assumptions) Show(key string) string {
	if k, ok := lookup(key); ok {
		return k.show(a)
	}
	return ""
}

// Validate checks every range; the error joins one *FieldError per
// problem, with lines from lineOf (nil: none).
func (a Assumptions) Validate() error { return a.validate(nil) }

func (a Assumptions) validate(lineOf func(key string) int) error {
	var errs []error
	fail := func(key, format string, args ...any) {
		e := &FieldError{Field: key, Msg: fmt.Sprintf(format, args...)}
		if lineOf != nil {
			e.Line = lineOf(key)
		}
		errs = append(errs, e)
	}
	// atLeastZero and positive refuse NaN and infinities too: they only
	// come from code or overflow, and no plan can use them.
	atLeastZero := func(key string, v float64, shown any) {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			fail(key, "must be a finite number, got %v", shown)
		case v < 0:
			fail(key, "must not be negative, got %v", shown)
		}
	}
	notNegative := func(key string, v Seconds) { atLeastZero(key, float64(v), v) }
	positive := func(key string, v Seconds) {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			fail(key, "must be a positive, finite duration, got %v", v)
		}
	}
	positive("replica.mtbf", a.ReplicaMTBF)
	positive("replica.mttr", a.ReplicaMTTR)
	atLeastZero("zone.failuresPerYear", a.ZoneFailuresPerYear, a.ZoneFailuresPerYear)
	positive("zone.mttr", a.ZoneMTTR)
	if !(a.SiteDisastersPerYear > 0) || math.IsInf(a.SiteDisastersPerYear, 0) {
		// A rate of 0 is an infinite MTBF: no interval is optimal then.
		fail("site.disastersPerYear", "must be positive and finite (with no disasters there is no optimal backup interval), got %v", a.SiteDisastersPerYear)
	}
	positive("backup.duration", a.BackupDuration)
	notNegative("backup.interval", a.BackupInterval)
	if a.BackupInterval > 0 && a.BackupInterval <= a.BackupDuration {
		fail("backup.interval", "must be longer than backup.duration (%v) so that one backup ends before the next starts, got %v", a.BackupDuration, a.BackupInterval)
	}
	atLeastZero("restore.size", a.RestoreSize, formatBytes(a.RestoreSize))
	if !(a.RestoreThroughput > 0) || math.IsInf(a.RestoreThroughput, 0) {
		fail("restore.throughput", "must be positive and finite, got %s/s", formatBytes(a.RestoreThroughput))
	}
	notNegative("restore.startup", a.RestoreStartup)
	notNegative("restore.firstInference", a.FirstInference)
	if a.K < 0 {
		fail("serving.k", "must not be negative (0 takes it from the deployment), got %d", a.K)
	}
	return errors.Join(errs...)
}
