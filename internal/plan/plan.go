package plan

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
)

// Inputs are everything a plan needs: the deployment's shape and the
// failure assumptions.
type Inputs struct {
	Topology    Topology
	Assumptions Assumptions
}

// Result is a plan: its inputs, each value it derived, and the formulas
// that derived them, in the order they are computed.
type Result struct {
	Topology     Topology     `json:"topology"`
	Assumptions  Assumptions  `json:"assumptions"`
	Availability Availability `json:"availability"`
	Recovery     Recovery     `json:"recovery"`
	Backup       Backup       `json:"backup"`
	Formulas     []Formula    `json:"formulas"`
}

// Availability is the steady-state share of time the deployment serves.
// "Serving" counts replica and zone failures; "overall" also counts site
// disasters, each down for one RTO.
type Availability struct {
	Replica                float64 `json:"replica"` // A = MTBF/(MTBF+MTTR) of one replica
	Zone                   float64 `json:"zone"`    // of one zone
	K                      int     `json:"k"`
	N                      int     `json:"n"`
	Serving                float64 `json:"serving"`
	ServingUnavailability  float64 `json:"servingUnavailability"`
	ServingDowntimePerYear Seconds `json:"servingDowntimeSecondsPerYear"`
	ServingNines           float64 `json:"servingNines"`
	Site                   float64 `json:"site"` // share of time not recovering from a disaster
	Overall                float64 `json:"overall"`
	OverallUnavailability  float64 `json:"overallUnavailability"`
	OverallDowntimePerYear Seconds `json:"overallDowntimeSecondsPerYear"`
	OverallNines           float64 `json:"overallNines"`
}

// Recovery is the time from losing the site to answering again.
type Recovery struct {
	Transfer Seconds `json:"transferSeconds"` // restore.size / restore.throughput
	RTO      Seconds `json:"rtoSeconds"`
}

// Backup is the backup schedule and the data a disaster would lose.
type Backup struct {
	SiteMTBF Seconds `json:"siteMtbfSeconds"` // M, what backups protect against
	Delta    Seconds `json:"deltaSeconds"`    // δ, one backup's duration
	Young    Seconds `json:"youngSeconds"`    // optimum work between backups, first order
	Daly     Seconds `json:"dalySeconds"`     // the same, higher order
	// Interval is the schedule planned with, start to start: the one
	// assumed, else Daly's τ + δ.
	Interval       Seconds `json:"intervalSeconds"`
	IntervalSource string  `json:"intervalSource"` // "assumed" or "daly"
	RPOExpected    Seconds `json:"rpoExpectedSeconds"`
	RPOWorst       Seconds `json:"rpoWorstSeconds"`
}

// Formula is one step of a plan: its expression, the same with the
// numbers substituted, and the value.
type Formula struct {
	Section     string  `json:"section"` // serving, recovery, overall, backup
	Name        string  `json:"name"`
	Expression  string  `json:"formula"`
	Substituted string  `json:"substituted"`
	Value       float64 `json:"value"`
	Unit        string  `json:"unit"` // "s", or "" for a probability or count
}

// Show writes the value for people: a time in its unit, a probability
// with the digits its nines need.
func (f Formula) Show() string {
	switch f.Unit {
	case "s":
		return Seconds(f.Value).String()
	case "nines":
		return trimFloat(f.Value, 3)
	}
	return ShowProbability(f.Value)
}

// ShowProbability writes a probability near 1 with enough digits to see
// its nines: 0.999702, 0.99999992284.
func ShowProbability(p float64) string {
	digits := 6
	if p < 1 && p > 0.9 {
		digits = min(15, int(Nines(1-p))+5)
	}
	s := fmt.Sprintf("%.*f", digits, p)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Compute makes the plan. Invalid assumptions or a topology that cannot
// serve (k above n) are *FieldErrors, all reported at once.
func Compute(in Inputs) (Result, error) {
	a, t := in.Assumptions, in.Topology
	if a.K > 0 {
		t.K, t.KReason = a.K, "serving.k assumed"
	}
	if err := errors.Join(a.Validate(), t.validate()); err != nil {
		return Result{}, err
	}
	a.Sources = maps.Clone(a.Sources)
	if a.Sources == nil {
		a.Sources = map[string]string{}
	}
	r := Result{Topology: t, Assumptions: a}
	f := &formulas{}

	// Serving availability: replicas and zones.
	av := &r.Availability
	av.K, av.N = t.K, t.N()
	var uReplica, uZone float64
	av.Replica, uReplica = RepairAvailability(a.ReplicaMTBF, a.ReplicaMTTR)
	f.add("serving", "replica availability", "A = MTBF / (MTBF + MTTR)",
		fmt.Sprintf("%s / (%s + %s)", secs(a.ReplicaMTBF), secs(a.ReplicaMTBF), secs(a.ReplicaMTTR)), av.Replica, "")
	av.Zone, uZone = RateAvailability(a.ZoneFailuresPerYear, a.ZoneMTTR)
	zoneSub := fmt.Sprintf("(%s / %s) / (%s / %s + %s)", secs(Year), num(a.ZoneFailuresPerYear), secs(Year), num(a.ZoneFailuresPerYear), secs(a.ZoneMTTR))
	if a.ZoneFailuresPerYear == 0 {
		zoneSub = "no zone failures assumed: 1"
	}
	f.add("serving", "zone availability", "Az = MTBFz / (MTBFz + MTTRz), MTBFz = 1 y / zone failures per year", zoneSub, av.Zone, "")
	uServing, err := ServingUnavailability(t.K, t.Zones, uReplica, uZone)
	if err != nil {
		return Result{}, err
	}
	av.ServingUnavailability, av.Serving = uServing, 1-uServing
	f.add("serving", "serving availability (k of n, with zones)",
		"As = Σ over zone states P(zones down) · P(at least k up of the replicas in up zones), each replica up with A, each zone up with Az",
		fmt.Sprintf("Σ with k = %d, n = %d, %s, A = %s, Az = %s", t.K, av.N, zoneList(t.Zones), ShowProbability(av.Replica), ShowProbability(av.Zone)),
		av.Serving, "")
	av.ServingDowntimePerYear = Seconds(uServing) * Year
	av.ServingNines = Nines(uServing)
	f.add("serving", "serving downtime per year", "(1 − As) · 1 y", fmt.Sprintf("%s · %s", num(uServing), secs(Year)), float64(av.ServingDowntimePerYear), "s")

	// Recovery after a disaster.
	rc := &r.Recovery
	rc.Transfer = Seconds(a.RestoreSize / a.RestoreThroughput)
	f.add("recovery", "restore transfer", "restore size / restore throughput",
		fmt.Sprintf("%s B / %s B/s", num(a.RestoreSize), num(a.RestoreThroughput)), float64(rc.Transfer), "s")
	rc.RTO = rc.Transfer + a.RestoreStartup + a.FirstInference
	f.add("recovery", "RTO", "transfer + startup + first good inference",
		fmt.Sprintf("%s + %s + %s", secs(rc.Transfer), secs(a.RestoreStartup), secs(a.FirstInference)), float64(rc.RTO), "s")

	// Overall availability: a disaster takes the deployment down for an RTO.
	var uSite float64
	av.Site, uSite = RateAvailability(a.SiteDisastersPerYear, rc.RTO)
	f.add("overall", "site availability", "Asite = MTBFsite / (MTBFsite + RTO), MTBFsite = 1 y / disasters per year",
		fmt.Sprintf("(%s / %s) / (%s / %s + %s)", secs(Year), num(a.SiteDisastersPerYear), secs(Year), num(a.SiteDisastersPerYear), secs(rc.RTO)), av.Site, "")
	// 1 − As·Asite, written so that no digits cancel.
	av.OverallUnavailability = uServing + uSite - uServing*uSite
	av.Overall = 1 - av.OverallUnavailability
	f.add("overall", "overall availability", "A = As · Asite",
		fmt.Sprintf("%s · %s", ShowProbability(av.Serving), ShowProbability(av.Site)), av.Overall, "")
	av.OverallDowntimePerYear = Seconds(av.OverallUnavailability) * Year
	f.add("overall", "overall downtime per year", "(1 − A) · 1 y",
		fmt.Sprintf("%s · %s", num(av.OverallUnavailability), secs(Year)), float64(av.OverallDowntimePerYear), "s")
	av.OverallNines = Nines(av.OverallUnavailability)
	f.add("overall", "nines", "−log10(1 − A)", fmt.Sprintf("−log10(%s)", num(av.OverallUnavailability)), av.OverallNines, "nines")

	// Backups: the optimum interval and the data a disaster loses.
	b := &r.Backup
	b.SiteMTBF, b.Delta = Year/Seconds(a.SiteDisastersPerYear), a.BackupDuration
	f.add("backup", "M (site MTBF)", "M = 1 y / site disasters per year",
		fmt.Sprintf("%s / %s", secs(Year), num(a.SiteDisastersPerYear)), float64(b.SiteMTBF), "s")
	b.Young = Young(b.Delta, b.SiteMTBF)
	f.add("backup", "Young (1974)", "τ = √(2δM)",
		fmt.Sprintf("√(2 · %s · %s)", secs(b.Delta), secs(b.SiteMTBF)), float64(b.Young), "s")
	b.Daly = Daly(b.Delta, b.SiteMTBF)
	dalySub := fmt.Sprintf("√(2 · %[1]s · %[2]s) · [1 + (1/3) · √(%[1]s / (2 · %[2]s)) + (1/9) · (%[1]s / (2 · %[2]s))] − %[1]s", secs(b.Delta), secs(b.SiteMTBF))
	if b.Delta >= 2*b.SiteMTBF {
		dalySub = fmt.Sprintf("δ ≥ 2M, so τ = M = %s", secs(b.SiteMTBF))
	}
	f.add("backup", "Daly (2006)", "τ = √(2δM) · [1 + (1/3) · √(δ/(2M)) + (1/9) · (δ/(2M))] − δ for δ < 2M, else τ = M",
		dalySub, float64(b.Daly), "s")
	if a.BackupInterval > 0 {
		b.Interval, b.IntervalSource = a.BackupInterval, "assumed"
		f.add("backup", "backup interval (start to start)", "T = backup.interval", secs(a.BackupInterval), float64(b.Interval), "s")
	} else {
		b.Interval, b.IntervalSource = b.Daly+b.Delta, "daly"
		f.add("backup", "backup interval (start to start)", "T = τ(Daly) + δ", fmt.Sprintf("%s + %s", secs(b.Daly), secs(b.Delta)), float64(b.Interval), "s")
	}
	b.RPOExpected, b.RPOWorst = RPO(b.Interval, b.Delta)
	f.add("backup", "expected RPO", "T/2 + δ", fmt.Sprintf("%s / 2 + %s", secs(b.Interval), secs(b.Delta)), float64(b.RPOExpected), "s")
	f.add("backup", "worst RPO", "T + δ", fmt.Sprintf("%s + %s", secs(b.Interval), secs(b.Delta)), float64(b.RPOWorst), "s")

	r.Formulas = f.list
	// Extreme assumptions (a restore at a byte per century, an MTBF of
	// 1e300 years) can overflow; say which step did rather than print NaN.
	for _, x := range r.Formulas {
		if math.IsNaN(x.Value) || math.IsInf(x.Value, 0) {
			return Result{}, &FieldError{Field: x.Name, Msg: fmt.Sprintf("%s is not a finite number with these assumptions (%s)", x.Expression, x.Substituted)}
		}
	}
	return r, nil
}

type formulas struct{ list []Formula }

func (f *formulas) add(section, name, expr, sub string, v float64, unit string) {
	f.list = append(f.list, Formula{Section: section, Name: name, Expression: expr, Substituted: sub, Value: v, Unit: unit})
}

// zoneList writes the replicas per zone: "zones a:1 b:1 c:1".
func zoneList(zs []ZoneReplicas) string {
	if len(zs) == 1 && zs[0].Zone == "" {
		return "one zone"
	}
	parts := make([]string, len(zs))
	for i, z := range zs {
		parts[i] = fmt.Sprintf("%s:%d", z.Zone, z.Replicas)
	}
	return "zones " + strings.Join(parts, " ")
}
