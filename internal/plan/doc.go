// Package plan computes what a deployment can be expected to achieve
// under stated failure assumptions: its steady-state availability (k of n
// replicas spread over zones, zones that fail as a whole, site disasters
// that last a recovery), the backup interval that balances the cost of
// taking backups against the work a disaster loses (Young 1974; Daly
// 2006), and the expected RPO and RTO.
//
// Flow: ParseAssumptions (a small strict YAML document, errors naming the
// line and field) or Defaults, then Assumptions.Set for command-line
// overrides; TopologyOf reads replicas, zones and the voting quorum from a
// parsed control.Deployment; Compute turns both into a Result that holds
// every input, every formula (written out and with its numbers
// substituted) and every value. The math is pure: no I/O, no clock.
//
// `bulwark plan` prints a Result; `bulwark drill` calls Compute to put
// the plan beside what it measures. The formulas and the file format are
// in docs/plan.md.
package plan
