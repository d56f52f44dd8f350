package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/plan"
)

func newPlanCmd(g *globals) *cobra.Command {
	var file, name, assumptions string
	values := make([]string, len(plan.Keys()))
	cmd := &cobra.Command{
		Use:   "plan -f DEPLOYMENT [--assumptions FILE] [--KEY VALUE ...]",
		Short: "Compute a deployment's expected availability, backup interval, RPO and RTO",
		Long: `Plan reads a deployment file (the YAML that apply takes) and failure
assumptions, and computes what the deployment can be expected to achieve:

  - steady-state availability: up when k of its n replicas are up (k is 1,
    or the vote's majority when spec.policy.vote is on), each replica up
    A = MTBF/(MTBF+MTTR) of the time, spread over zones that fail whole;
    exact, by enumerating the zones' states; then site disasters, each
    down for one RTO. Downtime per year and nines.
  - the backup interval that balances backup cost against lost work
    (Young 1974: √(2δM); Daly 2006, higher order), with M the mean time
    between site disasters and δ the time one backup takes.
  - the expected and worst RPO, and the RTO (restore transfer + startup +
    first good inference).

Assumptions come from the defaults, then --assumptions FILE, then flags
named after the file's keys (replica.mtbf is --replica-mtbf). Durations
are Go durations or days and years (200ms, 4h, 30d, 10y); sizes 2GiB or
500MB; throughputs 100MiB/s. Every formula is printed with its numbers;
--json prints every input, formula and result. The formulas and the file
format are in docs/plan.md.`,
		Example: `  bulwark plan -f iris.yaml
  bulwark plan -f iris.yaml --assumptions failures.yaml --json
  bulwark plan -f iris.yaml --replica-mtbf 7d --site-disasters-per-year 0.2 --backup-interval 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{errors.New("-f DEPLOYMENT is required (- reads stdin)")}
			}
			top, err := planTopology(cmd, file, name)
			if err != nil {
				return err
			}
			a := plan.Defaults()
			if assumptions != "" {
				b, err := os.ReadFile(assumptions)
				if err != nil {
					return fmt.Errorf("read assumptions: %w", err)
				}
				if a, err = plan.ParseAssumptions(b); err != nil {
					return invalidPlanInput{fmt.Errorf("%s: %w", assumptions, err)}
				}
			}
			for i, k := range plan.Keys() {
				if cmd.Flags().Changed(flagOf(k.Name)) {
					if err := a.Set(k.Name, values[i], "flag"); err != nil {
						return usageError{fmt.Errorf("--%s: %w", flagOf(k.Name), err)}
					}
				}
			}
			res, err := plan.Compute(plan.Inputs{Topology: top, Assumptions: a})
			if err != nil {
				return invalidPlanInput{err}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			return printPlan(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "deployment file (YAML; - for stdin)")
	f.StringVar(&name, "name", "", "the deployment to plan, when the file holds several")
	f.StringVar(&assumptions, "assumptions", "", "assumptions file (YAML; format in docs/plan.md)")
	for i, k := range plan.Keys() {
		f.StringVar(&values[i], flagOf(k.Name), "", k.Help+" ["+k.Name+"]")
	}
	return cmd
}

// flagOf spells an assumption's key as a flag: zone.failuresPerYear is
// --zone-failures-per-year.
func flagOf(key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case r == '.':
			b.WriteByte('-')
		case unicode.IsUpper(r):
			b.WriteByte('-')
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// invalidPlanInput makes bad assumptions exit 4, like any file that does
// not validate, keeping the plan's own message.
type invalidPlanInput struct{ error }

func (e invalidPlanInput) Unwrap() error        { return e.error }
func (e invalidPlanInput) Is(target error) bool { return target == errInvalidConfig }

// planTopology reads the deployment file and picks the deployment to plan.
func planTopology(cmd *cobra.Command, file, name string) (plan.Topology, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(cmd.InOrStdin())
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return plan.Topology{}, fmt.Errorf("read deployment: %w", err)
	}
	var ds []*control.Deployment
	for _, doc := range control.SplitDocuments(b) {
		d, err := control.Parse(doc.Body)
		if err != nil {
			return plan.Topology{}, fmt.Errorf("%s: %w", file, err)
		}
		ds = append(ds, d)
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Metadata.Name
	}
	var d *control.Deployment
	switch {
	case len(ds) == 0:
		return plan.Topology{}, invalidPlanInput{fmt.Errorf("%s: no deployment in the file", file)}
	case name != "":
		for _, c := range ds {
			if c.Metadata.Name == name {
				d = c
			}
		}
		if d == nil {
			return plan.Topology{}, fmt.Errorf("%s: deployment %q %w (the file has %s)", file, name, control.ErrNotFound, strings.Join(names, ", "))
		}
	case len(ds) > 1:
		return plan.Topology{}, usageError{fmt.Errorf("%s holds %d deployments (%s): pick one with --name", file, len(ds), strings.Join(names, ", "))}
	default:
		d = ds[0]
	}
	top, err := plan.TopologyOf(d)
	if err != nil {
		return plan.Topology{}, invalidPlanInput{fmt.Errorf("%s: %w", file, err)}
	}
	return top, nil
}

// printPlan writes the plan for people: a summary, the assumptions and
// where each came from, then every formula with its numbers.
func printPlan(w io.Writer, r plan.Result) error {
	t, av, b := r.Topology, r.Availability, r.Backup
	name := t.Deployment
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(w, "Plan for deployment %s: %s; %d must be up: %s\n\n", name, t.Describe(), t.K, t.KReason)

	fmt.Fprintln(w, "Summary")
	s := newTable(w, "  availability", fmt.Sprintf("%s (%s nines), %s down a year", percent(av.OverallUnavailability), trim(av.OverallNines), av.OverallDowntimePerYear))
	s.row("", fmt.Sprintf("replicas and zones alone: %s, %s down a year", percent(av.ServingUnavailability), av.ServingDowntimePerYear))
	interval := fmt.Sprintf("every %s, start to start (assumed)", b.Interval)
	if b.IntervalSource == "daly" {
		interval = fmt.Sprintf("every %s, start to start (Daly's optimum τ = %s of work, then δ = %s of backup)", b.Interval, b.Daly, b.Delta)
	}
	s.row("  backups", interval)
	s.row("  RPO", fmt.Sprintf("%s expected, %s at worst", b.RPOExpected, b.RPOWorst))
	s.row("  RTO", r.Recovery.RTO.String())
	if err := s.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nAssumptions")
	at := newTable(w, "  key", "value", "from")
	for _, k := range plan.Keys() {
		from := r.Assumptions.Sources[k.Name]
		if from == "" {
			from = "default"
			if k.Name == "replica.mttr" {
				from = "default (the controller's measured restart)"
			}
		}
		at.row("  "+k.Name, r.Assumptions.Show(k.Name), from)
	}
	if err := at.flush(); err != nil {
		return err
	}

	section := ""
	for _, f := range r.Formulas {
		if f.Section != section {
			section = f.Section
			title, ok := planSections[section]
			if !ok {
				title = section
			}
			fmt.Fprintf(w, "\n%s\n", title)
		}
		fmt.Fprintf(w, "  %s\n      %s\n      = %s\n      = %s\n", f.Name, f.Expression, f.Substituted, f.Show())
	}
	fmt.Fprint(w, `
References
  J. W. Young, "A first order approximation to the optimum checkpoint interval",
    Communications of the ACM 17(9), 1974.
  J. T. Daly, "A higher order estimate of the optimum checkpoint interval for
    restart dumps", Future Generation Computer Systems 22(3), 2006.
`)
	return nil
}

// planSections are the titles of the plan's formula sections.
var planSections = map[string]string{
	"serving":  "Serving availability (replicas and zones)",
	"recovery": "Recovery from a site disaster (RTO)",
	"overall":  "Overall availability (with site disasters)",
	"backup":   "Backups and RPO",
}

// percent writes an availability from its unavailability, with the
// decimals its nines need: 99.9702%, 99.99987%.
func percent(u float64) string {
	decimals := 2
	if u > 0 {
		decimals = min(12, max(2, int(math.Floor(-math.Log10(u)))+1))
	}
	return fmt.Sprintf("%.*f%%", decimals, 100*(1-u))
}

func trim(v float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
