package plan

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// The math works on unavailability (1 − A) throughout: for a deployment
// with many nines, 1 − A computed from A would lose every significant
// digit, so the probabilities of being down are computed directly and
// summed, and availability is derived last.

// RepairAvailability is the steady-state availability of a unit that fails
// after a mean mtbf up and is repaired in a mean mttr: MTBF/(MTBF+MTTR).
// It returns the unavailability MTTR/(MTBF+MTTR) too, computed directly.
func RepairAvailability(mtbf, mttr Seconds) (a, u float64) {
	sum := float64(mtbf + mttr)
	return float64(mtbf) / sum, float64(mttr) / sum
}

// RateAvailability is the same for a unit that fails perYear times a year
// (MTBF = 1 y / rate); a rate of 0 never fails.
func RateAvailability(perYear float64, mttr Seconds) (a, u float64) {
	if perYear == 0 {
		return 1, 0
	}
	return RepairAvailability(Year/Seconds(perYear), mttr)
}

// KOfN is the probability that at least k of n independent units are up,
// each down with probability u (binomial): 1 − Σ_{i<k} C(n,i)·(1−u)^i·u^(n−i).
func KOfN(k, n int, u float64) float64 { return 1 - shortfall(k, n, u) }

// shortfall is the probability that fewer than k of n units are up, each
// down with probability u: Σ_{i=0}^{k−1} C(n,i)·(1−u)^i·u^(n−i), summed in
// logarithms so that large n neither overflows C(n,i) nor underflows the
// powers before they meet.
func shortfall(k, n int, u float64) float64 {
	switch {
	case k <= 0:
		return 0
	case k > n:
		return 1
	case u <= 0:
		return 0 // every unit is up and k ≤ n
	case u >= 1:
		return 1
	}
	logUp, logDown := math.Log1p(-u), math.Log(u)
	sum := 0.0
	for i := range k {
		sum += math.Exp(logChoose(n, i) + float64(i)*logUp + float64(n-i)*logDown)
	}
	return math.Min(sum, 1)
}

// logChoose is ln C(n, i).
func logChoose(n, i int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(i + 1))
	c, _ := math.Lgamma(float64(n - i + 1))
	return a - b - c
}

// maxZoneStates bounds the enumeration of zone states; a real deployment
// needs a handful.
const maxZoneStates = 1_000_000

// ZoneReplicas is how many of a deployment's replicas run in one zone.
type ZoneReplicas struct {
	Zone     string `json:"zone"` // "" for a deployment that names no zones: all in one
	Replicas int    `json:"replicas"`
}

// ServingUnavailability is the exact steady-state probability that fewer
// than k replicas are up, with replicas spread over zones as given: each
// replica is down with probability uReplica on its own, and each zone is
// down with probability uZone, taking its replicas with it; all failures
// independent. It enumerates the zone states (which zones are down) and
// adds up P(zone state) × P(fewer than k of the replicas in up zones are
// up). Zones holding the same number of replicas are interchangeable, so
// the states are enumerated as "how many zones of each size are down",
// weighted by binomial coefficients: the same sum, grouped.
func ServingUnavailability(k int, zones []ZoneReplicas, uReplica, uZone float64) (float64, error) {
	sizes := map[int]int{} // replicas per zone → zones of that size
	for _, z := range zones {
		if z.Replicas > 0 {
			sizes[z.Replicas]++
		}
	}
	type group struct{ size, zones int }
	var groups []group
	states := 1.0
	for _, size := range slices.Sorted(maps.Keys(sizes)) {
		groups = append(groups, group{size, sizes[size]})
		states *= float64(sizes[size] + 1)
	}
	if states > maxZoneStates {
		return 0, fmt.Errorf("%w: %.0f zone states to enumerate, more than %d", ErrInvalid, states, maxZoneStates)
	}
	var total float64
	var walk func(g int, p float64, upReplicas int)
	walk = func(g int, p float64, upReplicas int) {
		if p == 0 {
			return
		}
		if g == len(groups) {
			total += p * shortfall(k, upReplicas, uReplica)
			return
		}
		gr := groups[g]
		for down := 0; down <= gr.zones; down++ {
			walk(g+1, p*binomialTerm(gr.zones, down, uZone), upReplicas+(gr.zones-down)*gr.size)
		}
	}
	walk(0, 1, 0)
	return math.Min(total, 1), nil
}

// binomialTerm is C(n, d)·u^d·(1−u)^(n−d): the probability that exactly
// d of n units are down.
func binomialTerm(n, d int, u float64) float64 {
	switch {
	case u <= 0:
		if d == 0 {
			return 1
		}
		return 0
	case u >= 1:
		if d == n {
			return 1
		}
		return 0
	}
	return math.Exp(logChoose(n, d) + float64(d)*math.Log(u) + float64(n-d)*math.Log1p(-u))
}

// Nines is −log10(1 − A) from the unavailability: 3 for 99.9%. A plan with
// no downtime the float can express reports 300.
func Nines(u float64) float64 {
	return -math.Log10(math.Max(u, 1e-300))
}
