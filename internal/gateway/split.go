package gateway

import (
	"math/rand/v2"
	"time"
)

// Traffic splitting across a model's versions. Replicas may carry the
// label of the model version they serve; the labels form groups, one per
// version. A request that names a version goes to its group. With
// weights (ModelConfig.Versions, a canary), an unnamed request first draws
// a group by weight among the groups with a replica available, then a
// replica inside it by the power of two choices; without weights every
// replica takes an equal part, as behind a Kubernetes Service.

// replicaSet is one model's replicas as one Update left them. It is
// immutable and swapped whole, so a request sees one consistent set.
type replicaSet struct {
	all []*replica
	// group[i] is the index in groups of all[i]'s label; nil when no
	// replica has a label.
	group  []int
	groups []group
	// weighted: unnamed requests are split by the groups' weights.
	weighted bool
}

// group is one version's replicas' share.
type group struct {
	version string
	weight  int
}

// newReplicaSet labels reps (in the order of mc.Replicas) with their
// versions' groups.
func newReplicaSet(reps []*replica, mc *ModelConfig) *replicaSet {
	s := &replicaSet{all: reps}
	index := map[string]int{}
	for _, v := range mc.Versions {
		index[v.Version] = len(s.groups)
		s.groups = append(s.groups, group{version: v.Version, weight: v.Weight})
	}
	s.weighted = len(s.groups) > 0
	labelled := s.weighted
	for _, rc := range mc.Replicas {
		labelled = labelled || rc.Version != ""
	}
	if !labelled {
		return s
	}
	s.group = make([]int, len(reps))
	for i, rc := range mc.Replicas {
		g, ok := index[rc.Version]
		if !ok { // only without weights: Validate requires listed versions
			g = len(s.groups)
			index[rc.Version] = g
			s.groups = append(s.groups, group{version: rc.Version})
		}
		s.group[i] = g
	}
	return s
}

// groupOf is the index of version's group, -1 if no replica carries it.
func (s *replicaSet) groupOf(version string) int {
	for i, g := range s.groups {
		if g.version == version {
			return i
		}
	}
	return -1
}

// in reports whether all[i] serves version only: always when only is
// empty or no replica carries that label (then any replica may serve it).
func (s *replicaSet) in(i int, only string) bool {
	if only == "" || s.group == nil {
		return true
	}
	g := s.groupOf(only)
	return g < 0 || s.group[i] == g
}

// version is all[i]'s label.
func (s *replicaSet) version(i int) string {
	if s.group == nil {
		return ""
	}
	return s.groups[s.group[i]].version
}

// choose draws one group by weight among those views has candidates in
// and keeps only that group's views (in place). Groups of weight 0 are
// drawn, evenly, only when no weighted group has a candidate: serving
// from a version taken out of rotation beats refusing the request.
func (s *replicaSet) choose(views []view) ([]view, int) {
	var hasBuf [8]bool
	has := hasBuf[:]
	if len(s.groups) > len(has) {
		has = make([]bool, len(s.groups))
	}
	for _, v := range views {
		has[v.group] = true
	}
	total, n := 0, 0
	for i, g := range s.groups {
		if has[i] {
			total += g.weight
			n++
		}
	}
	chosen := -1
	if total > 0 {
		x := rand.IntN(total)
		for i, g := range s.groups {
			if has[i] {
				if x < g.weight {
					chosen = i
					break
				}
				x -= g.weight
			}
		}
	} else {
		x := rand.IntN(n)
		for i := range s.groups {
			if has[i] {
				if x == 0 {
					chosen = i
					break
				}
				x--
			}
		}
	}
	k := 0
	for _, v := range views {
		if v.group == chosen {
			views[k] = v
			k++
		}
	}
	return views[:k], chosen
}

// voteVersion picks the version a voted request is sent to: every voter
// must serve the same version, or versions that answer differently would
// be outvoted and ejected. It draws among the versions with at least need
// replicas available, by weight when the model has weights (by available
// replicas otherwise, or when their weights are all 0); when none has
// enough, the one with the most, whose vote then says what is missing.
// "" means the model has no labels: any replica may vote.
func (m *model) voteVersion(now time.Time, p *Policy, need int) string {
	set := m.set.Load()
	if set.group == nil {
		return ""
	}
	avail := make([]int, len(set.groups))
	for i, r := range set.all {
		if r.view(now, p).usable {
			avail[set.group[i]]++
		}
	}
	best, total, weightTotal := 0, 0, 0
	for i, n := range avail {
		if n > avail[best] {
			best = i
		}
		if n >= need {
			total += n
			weightTotal += set.groups[i].weight
		}
	}
	if total == 0 {
		return set.groups[best].version
	}
	byWeight := set.weighted && weightTotal > 0
	x := rand.IntN(total)
	if byWeight {
		x = rand.IntN(weightTotal)
	}
	for i, n := range avail {
		if n < need {
			continue
		}
		share := n
		if byWeight {
			share = set.groups[i].weight
		}
		if x < share {
			return set.groups[i].version
		}
		x -= share
	}
	return set.groups[best].version
}
