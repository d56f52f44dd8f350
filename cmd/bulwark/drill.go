package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/drill"
	"github.com/bulwark-ml/bulwark/internal/plan"
	"github.com/bulwark-ml/bulwark/internal/version"
)

// errDrillFailed: the drill ran and missed an objective (exit code 8).
var errDrillFailed = errors.New("the drill did not meet its objectives")

type drillFlags struct {
	scenario, out, workDir, gateway, controller, token string
	repo, offsite, recoverInto, assumptions            string
	scratch, short, keep, allowDestroy, list           bool
	show                                               string
}

func newDrillCmd(g *globals) *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "drill [--scratch] [--scenario NAME|FILE] [--out DIR]",
		Short: "Prove the site survives faults and a disaster: measured RTO, RPO and a report",
		Long: `Drill runs a scenario of phases under steady load (vegeta) through the
gateway, and measures what clients saw: requests sent and failed and
latency percentiles per phase and per second. The default scenario kills
and freezes replicas, makes them slow, wrong and failing, kills the
controller, rolls out a broken model version (the controller must roll it
back), then destroys the whole site (every process SIGKILLed, its
directory removed), restores the latest backup (the off-site one with
--offsite-repo) into a new site, starts it, and verifies that it gives the
same predictions as before and holds the deployments and revisions of the
backup. It measures the RTO (disaster → first good inference, → full
capacity) and the RPO (age of the restored backup; the changes made after
it are listed as lost).

--scratch creates a site of its own (bulwark up with chaos mode and a
backup repository, in --work-dir or a temporary directory) and stops it
at the end. Without it the drill runs on the running site --site, whose
gateway and controller answer at --gateway and --controller; it needs
chaos mode (bulwark up --chaos) for the slow, wrong and failing replicas
(a scenario with them is refused up front without it), and
--allow-destroy and --repo for a scenario with a disaster.

The report goes to --out: report.json, report.md and report.html (a
self-contained page with an SVG timeline). The exit code is 0 when every
objective of the scenario is met, 8 when the drill ran and missed one.
Scenarios are YAML (docs/scenarios.md); --show default prints the default
one to start your own from.`,
		Example: `  bulwark drill --scratch
  bulwark drill --scratch --short --out /tmp/drill
  bulwark drill --scratch --scenario my-scenario.yaml --offsite-repo s3:https://s3.example.com/dr
  bulwark drill --show default > my-scenario.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case f.list:
				for _, n := range drill.BuiltinNames() {
					fmt.Fprintln(out, n)
				}
				return nil
			case f.show != "":
				_, raw, err := drill.Builtin(f.show)
				if err != nil {
					return usageError{err}
				}
				_, err = out.Write(raw)
				return err
			}
			return runDrill(cmd, g, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "default", "a built-in scenario's name ("+strings.Join(drill.BuiltinNames(), ", ")+") or a YAML file")
	fl.BoolVar(&f.short, "short", false, "run the short built-in scenario (under a minute; what CI runs)")
	fl.BoolVar(&f.scratch, "scratch", false, "create a scratch site for the drill, and stop it at the end")
	fl.StringVar(&f.out, "out", "", "directory for report.json, report.md and report.html (default drill-report-TIME)")
	fl.StringVar(&f.workDir, "work-dir", "", "directory for the drill's logs, scratch site and repository (default: a new temporary one)")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary work directory (logs, sites) after the drill")
	fl.StringVar(&f.gateway, "gateway", "http://"+defaultGatewayAddr, "without --scratch: the running site's gateway")
	fl.StringVar(&f.controller, "controller", "http://"+defaultControllerAddr, "without --scratch: the running site's controller")
	fl.StringVar(&f.token, "admin-token", "", "admin token (default: $BULWARK_ADMIN_TOKEN, or <site>/admin-token)")
	fl.StringVar(&f.repo, "repo", "", "the site's backup repository (a scratch site gets its own) [$BULWARK_PASSWORD[_FILE]]")
	fl.StringVar(&f.offsite, "offsite-repo", "", "off-site repository the site copies its backups to, and the disaster restores from [$BULWARK_OFFSITE_PASSWORD[_FILE]]")
	fl.StringVar(&f.recoverInto, "recover-into", "", "directory of the recovered site (default: in the work directory)")
	fl.BoolVar(&f.allowDestroy, "allow-destroy", false, "let a disaster phase destroy a site the drill did not create")
	fl.StringVar(&f.assumptions, "assumptions", "", "bulwark plan's assumptions file, for the plan beside the measurement")
	fl.BoolVar(&f.list, "list", false, "list the built-in scenarios")
	fl.StringVar(&f.show, "show", "", "print a built-in scenario's YAML")
	return cmd
}

func runDrill(cmd *cobra.Command, g *globals, f *drillFlags) error {
	sc, err := loadScenario(f)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := drill.Config{Exe: exe, Scenario: sc, Scratch: f.scratch, Gateway: f.gateway, Controller: f.controller,
		Repo: f.repo, Offsite: f.offsite, RecoverInto: f.recoverInto, AllowDestroy: f.allowDestroy,
		Inspect: inspectModel, Version: version.String(), Log: g.log.With("component", "drill"), Token: tokenFromEnv(f.token)}
	if !g.json {
		cfg.Progress = cmd.ErrOrStderr()
	}
	if f.assumptions != "" {
		b, err := os.ReadFile(f.assumptions)
		if err != nil {
			return fmt.Errorf("assumptions: %w", err)
		}
		a, err := plan.ParseAssumptions(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f.assumptions, err)
		}
		cfg.Assumptions = &a
	}
	if !f.scratch {
		cfg.Site = g.site
		if cfg.Token == "" {
			if cfg.Token, err = siteAdminToken(g.site, false); err != nil {
				return err
			}
		}
	}
	if err := drillPasswords(&cfg, f); err != nil {
		return err
	}
	cfg.WorkDir = f.workDir
	if cfg.WorkDir == "" {
		if cfg.WorkDir, err = os.MkdirTemp("", "bulwark-drill-"); err != nil {
			return err
		}
		if !f.keep {
			defer os.RemoveAll(cfg.WorkDir)
		}
	}
	outDir := f.out
	if outDir == "" {
		outDir = "drill-report-" + time.Now().Format("20060102-150405")
	}
	rep, err := drill.Run(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteFiles(outDir); err != nil {
		return err
	}
	if err := printDrill(cmd.OutOrStdout(), g, rep, outDir); err != nil {
		return err
	}
	if cmd.Context().Err() != nil {
		return fmt.Errorf("interrupted: the site was stopped and every fault cleared; the partial report is in %s", outDir)
	}
	if !rep.Passed {
		return errDrillFailed
	}
	return nil
}

func loadScenario(f *drillFlags) (*drill.Scenario, error) {
	name := f.scenario
	if f.short {
		name = "short"
	}
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.ContainsRune(name, filepath.Separator) {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		sc, err := drill.ParseScenario(b)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		return sc, nil
	}
	sc, _, err := drill.Builtin(name)
	if err != nil {
		return nil, usageError{err}
	}
	return sc, nil
}

// drillPasswords reads the repositories' passwords from the environment,
// as the controller does: a drill runs unattended.
func drillPasswords(cfg *drill.Config, f *drillFlags) error {
	var err error
	if f.repo != "" || !f.scratch {
		if f.repo != "" {
			if cfg.Password, err = passwordWithoutTerminal("--repo's password", "", envPasswordFile, envPassword); err != nil {
				return err
			}
		}
	}
	if f.offsite != "" {
		if cfg.OffsitePassword, err = passwordWithoutTerminal("the off-site password", "", "BULWARK_OFFSITE_PASSWORD_FILE", "BULWARK_OFFSITE_PASSWORD"); err != nil {
			return err
		}
	}
	return nil
}

// printDrill writes the verdict: the report as JSON with --json, else
// the markdown report's summary and where the files are.
func printDrill(w io.Writer, g *globals, rep *drill.Report, dir string) error {
	if g.json {
		return printJSON(w, rep)
	}
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\ndrill %s: %s in %s\n", rep.Scenario, verdict, rep.Finished.Sub(rep.Started).Round(time.Second))
	t := newTable(w, "PHASE", "FAULT", "MASKED", "SENT", "FAILED", "P50 MS", "P99 MS", "P99.9 MS")
	for _, p := range rep.Phases {
		t.row(p.Name, dash(p.Fault), yesNo(p.Masked), fmt.Sprint(p.Sent), fmt.Sprint(p.Failed),
			fmt.Sprintf("%.1f", p.P50), fmt.Sprintf("%.1f", p.P99), fmt.Sprintf("%.1f", p.P999))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if rc := rep.Recovery; rc != nil {
		fmt.Fprintf(w, "\nRTO %.2f s to the first good inference, %.2f s to full capacity; RPO %.1f s (snapshot %s), %d change(s) lost\n",
			rc.RTOFirst, rc.RTOFull, rc.RPO, shortString(rc.Snapshot), len(rc.Lost))
		for _, l := range rc.Lost {
			fmt.Fprintf(w, "  lost: %s, made %s after the backup\n", l.What, l.At.Sub(rc.SnapshotAt).Round(100*time.Millisecond))
		}
	}
	if v := rep.Verification; v != nil {
		fmt.Fprintf(w, "verification: %d of %d probes identical, deployments match the backup: %s\n", v.Identical, v.Probes, yesNo(v.DeploymentsMatch))
	}
	fmt.Fprintln(w)
	for _, o := range rep.Objectives {
		mark := "met"
		if !o.Met {
			mark = "MISSED"
		}
		measured := fmt.Sprintf("measured %.2f", o.Measured)
		if o.NotMeasured {
			measured = "not measured"
		}
		fmt.Fprintf(w, "objective %s: %s (target %g %s, %s)\n", o.Name, mark, o.Target, o.Unit, measured)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	fmt.Fprintf(w, "\nreport: %s\n", filepath.Join(dir, "report.html"))
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func shortString(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}
