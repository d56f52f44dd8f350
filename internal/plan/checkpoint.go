package plan

import "math"

// The optimum checkpoint interval balances the time spent taking
// checkpoints (a backup of duration δ every τ) against the work lost when
// a failure strikes (on average half an interval), for failures arriving
// with mean time M between them.
//
//   - J. W. Young, "A first order approximation to the optimum checkpoint
//     interval", Communications of the ACM 17(9):530–531, 1974.
//   - J. T. Daly, "A higher order estimate of the optimum checkpoint
//     interval for restart dumps", Future Generation Computer Systems
//     22(3):303–312, 2006.
//
// τ is the work between checkpoints; a backup schedule's interval, start
// to start, is τ + δ.

// Young is the first-order optimum τ = √(2δM).
func Young(delta, m Seconds) Seconds {
	return Seconds(math.Sqrt(2 * float64(delta) * float64(m)))
}

// Daly is the higher-order optimum
//
//	τ = √(2δM)·[1 + (1/3)·√(δ/(2M)) + (1/9)·(δ/(2M))] − δ   for δ < 2M,
//	τ = M                                                   otherwise:
//
// when a checkpoint takes longer than two MTBFs, checkpointing once per
// MTBF is the best there is.
func Daly(delta, m Seconds) Seconds {
	if delta >= 2*m {
		return m
	}
	x := float64(delta) / (2 * float64(m))
	return Young(delta, m)*Seconds(1+math.Sqrt(x)/3+x/9) - delta
}

// RPO is the data a disaster loses with backups of duration δ started
// every interval T (start to start). A backup's contents are those of its
// start, and it counts once it has finished, so a disaster at a uniformly
// random time loses between δ and T + δ of the latest changes: T/2 + δ on
// average, T + δ at worst.
func RPO(interval, delta Seconds) (expected, worst Seconds) {
	return interval/2 + delta, interval + delta
}
