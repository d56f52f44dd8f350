package plan

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.15g, want %.15g (±%g)", what, got, want, tol)
	}
}

// Young: δ = 5 min, M = 24 h = 1440 min.
// τ = √(2 · 5 · 1440) min = √14400 min = 120 min.
func TestYoungWorkedExample(t *testing.T) {
	near(t, "Young(5 min, 24 h)", float64(Young(5*Minute, 24*Hour)), float64(120*Minute), 1e-9)
}

// Daly, same δ and M: δ/(2M) = 5/2880 = 1/576, whose square root is 1/24.
// τ = 120 · [1 + (1/3)(1/24) + (1/9)(1/576)] − 5 min
//
//	= 120 + 120/72 + 120/5184 − 5 min = 115 + 5/3 + 5/216 min
//	= 115 + 365/216 min ≈ 116.689815 min = 7001.388889 s.
func TestDalyWorkedExample(t *testing.T) {
	got := Daly(5*Minute, 24*Hour)
	near(t, "Daly(5 min, 24 h)", float64(got), (115+365.0/216)*60, 1e-9)
	// Daly's correction shortens Young's interval by about δ when δ ≪ M.
	if y := Young(5*Minute, 24*Hour); !(got < y) {
		t.Errorf("Daly %v not below Young %v", got, y)
	}
}

// When a backup takes two MTBFs or more, Daly's optimum is τ = M.
func TestDalyLongBackup(t *testing.T) {
	for _, delta := range []Seconds{2 * Hour, 3 * Hour, 100 * Hour} {
		if got := Daly(delta, Hour); got != Hour {
			t.Errorf("Daly(%v, 1 h) = %v, want 1 h", delta, got)
		}
	}
	// Just below the boundary the formula still applies and stays positive.
	if got := Daly(2*Hour-1, Hour); !(got > 0) {
		t.Errorf("Daly(2M − 1 s, M) = %v, want positive", got)
	}
}

// A backup of 5 min started every 2 h loses 1 h + 5 min on average and
// 2 h 5 min at worst.
func TestRPO(t *testing.T) {
	exp, worst := RPO(2*Hour, 5*Minute)
	near(t, "expected", float64(exp), float64(Hour+5*Minute), 1e-9)
	near(t, "worst", float64(worst), float64(2*Hour+5*Minute), 1e-9)
}

func TestRepairAvailability(t *testing.T) {
	// MTBF 99 h, MTTR 1 h: A = 99/100.
	a, u := RepairAvailability(99*Hour, Hour)
	near(t, "A", a, 0.99, 1e-15)
	near(t, "1−A", u, 0.01, 1e-15)
	// One zone failure a year lasting 4 h: A = 8760/8764.
	a, _ = RateAvailability(1, 4*Hour)
	near(t, "Az", a, 8760.0/8764, 1e-15)
	if a, u := RateAvailability(0, Hour); a != 1 || u != 0 {
		t.Errorf("a zone that never fails: A = %v, 1−A = %v", a, u)
	}
}

func TestKOfNWorkedExamples(t *testing.T) {
	// 2 of 3 with A = 0.99: 3·A²·(1−A) + A³ = 3 · 0.9801 · 0.01 + 0.970299
	// = 0.029403 + 0.970299 = 0.999702.
	near(t, "2 of 3, A = 0.99", KOfN(2, 3, 0.01), 0.999702, 1e-12)
	// 1 of 3 with A = 0.9: 1 − 0.1³ = 0.999.
	near(t, "1 of 3, A = 0.9", KOfN(1, 3, 0.1), 0.999, 1e-12)
	// 3 of 3 with A = 0.99: 0.99³ = 0.970299.
	near(t, "3 of 3, A = 0.99", KOfN(3, 3, 0.01), 0.970299, 1e-12)
	// Edges: nothing needed, more than there is, certain units.
	near(t, "0 of 3", KOfN(0, 3, 0.5), 1, 0)
	near(t, "4 of 3", KOfN(4, 3, 0.01), 0, 0)
	near(t, "3 of 3, never down", KOfN(3, 3, 0), 1, 0)
	near(t, "1 of 3, always down", KOfN(1, 3, 1), 0, 0)
	// 500 of 1000 with A = 0.5: P(X < 500) = (1 − C(1000,500)/2¹⁰⁰⁰)/2
	// ≈ 0.48738749091; C(1000,500) alone is about 1e299, near overflow.
	near(t, "shortfall 500 of 1000", shortfall(500, 1000, 0.5), 0.4873874909108196, 1e-9)
}

// Many nines keep their digits: three replicas with u = 7.7e-8 need one:
// 1 − A = u³ ≈ 4.6e-22, which 1 − KOfN would round to 0.
func TestUnavailabilityKeepsDigits(t *testing.T) {
	_, u := RepairAvailability(30*Day, 0.2)
	got, err := ServingUnavailability(1, []ZoneReplicas{{"", 3}}, u, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := u * u * u; math.Abs(got-want) > 1e-9*want {
		t.Errorf("1 − A = %g, want %g", got, want)
	}
	near(t, "nines", Nines(got), -math.Log10(u*u*u), 1e-9)
	if Nines(0) != 300 {
		t.Errorf("Nines(0) = %v, want the 300 cap", Nines(0))
	}
}

func TestServingWithZonesWorkedExamples(t *testing.T) {
	cases := []struct {
		name         string
		k            int
		zones        []ZoneReplicas
		uRep, uZone  float64
		availability float64
	}{
		// One replica per zone: each is up with Az·A = 0.99 · 0.9 = 0.891,
		// independently; 1 of 3: 1 − 0.109³ = 0.998704971.
		{"1 of 3 in 3 zones", 1, []ZoneReplicas{{"a", 1}, {"b", 1}, {"c", 1}}, 0.1, 0.01, 0.998704971},
		// a holds 2, b holds 1; need 2; A = Az = 0.99.
		// both zones up (0.99² = 0.9801): 2 of 3 up: 0.999702
		// a up, b down (0.99 · 0.01 = 0.0099): both of a's up: 0.9801
		// a down: at most 1 replica: 0
		// As = 0.9801 · 0.999702 + 0.0099 · 0.9801 = 0.9895109202.
		{"2 of 3 in zones a:2 b:1", 2, []ZoneReplicas{{"a", 2}, {"b", 1}}, 0.01, 0.01, 0.9895109202},
		// All in one zone: Az · (1 − 0.1³) = 0.99 · 0.999 = 0.98901.
		{"1 of 3 in one zone", 1, []ZoneReplicas{{"", 3}}, 0.1, 0.01, 0.98901},
		// Zones that never fail leave plain k of n.
		{"2 of 3, zones never fail", 2, []ZoneReplicas{{"a", 1}, {"b", 1}, {"c", 1}}, 0.01, 0, 0.999702},
		// Zones holding no replica do not count.
		{"empty zones ignored", 1, []ZoneReplicas{{"a", 3}, {"b", 0}}, 0.1, 0.01, 0.98901},
	}
	for _, c := range cases {
		u, err := ServingUnavailability(c.k, c.zones, c.uRep, c.uZone)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		near(t, c.name, 1-u, c.availability, 1e-12)
	}
}

// The grouped enumeration equals brute force over every up/down state of
// every zone and every replica, on random small topologies.
func TestServingMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		zones := make([]ZoneReplicas, 1+rng.IntN(4))
		n := 0
		for i := range zones {
			zones[i] = ZoneReplicas{Zone: string(rune('a' + i)), Replicas: rng.IntN(4)}
			n += zones[i].Replicas
		}
		if n == 0 || n > 12 {
			continue
		}
		k := 1 + rng.IntN(n)
		uRep, uZone := rng.Float64()*0.5, rng.Float64()*0.5
		got, err := ServingUnavailability(k, zones, uRep, uZone)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteForce(k, zones, uRep, uZone)
		if math.Abs(got-want) > 1e-12 {
			t.Fatalf("trial %d: k=%d zones=%v uRep=%v uZone=%v: got %.15g, brute force %.15g", trial, k, zones, uRep, uZone, got, want)
		}
	}
}

func bruteForce(k int, zones []ZoneReplicas, uRep, uZone float64) float64 {
	var owner []int // zone of each replica
	for zi, z := range zones {
		for range z.Replicas {
			owner = append(owner, zi)
		}
	}
	down := 0.0
	for zs := 0; zs < 1<<len(zones); zs++ { // bit set: zone down
		for rs := 0; rs < 1<<len(owner); rs++ { // bit set: replica down
			p, up := 1.0, 0
			for zi := range zones {
				if zs&(1<<zi) != 0 {
					p *= uZone
				} else {
					p *= 1 - uZone
				}
			}
			for ri, zi := range owner {
				if rs&(1<<ri) != 0 {
					p *= uRep
				} else {
					p *= 1 - uRep
					if zs&(1<<zi) == 0 {
						up++
					}
				}
			}
			if up < k {
				down += p
			}
		}
	}
	return down
}

func TestServingRefusesHugeEnumeration(t *testing.T) {
	var zones []ZoneReplicas
	for i := range 2000 {
		zones = append(zones, ZoneReplicas{Zone: "z", Replicas: 1 + i%1000})
	}
	if _, err := ServingUnavailability(1, zones, 0.1, 0.1); err == nil {
		t.Fatal("no error for millions of zone states")
	}
}
