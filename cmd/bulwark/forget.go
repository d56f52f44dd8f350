package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/retention"
)

func newForgetCmd(g *globals) *cobra.Command {
	var (
		rf     repoFlags
		policy retention.Policy
		within string
		host   string
		prune  bool
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "forget [SNAP...] [--keep-* ...] [--prune] [--dry-run]",
		Short: "Remove snapshots by a retention policy (or by id)",
		Long: `Forget removes snapshots from the repository: those named, or those a
retention policy does not keep. The policy is applied to each group of
snapshots of the same host and site separately: --keep-last N keeps the N
newest; --keep-hourly/-daily/-weekly/-monthly/-yearly N keep the newest
snapshot of each of the last N hours, days, ... (calendar periods in local
time) that have one; --keep-within D keeps every snapshot younger than D
(2y5m7d3h or a Go duration such as 36h); --keep-tag T keeps every snapshot
tagged T. A snapshot kept by any rule stays. An empty policy is refused, so
that a typo never forgets everything.

Forget removes only the snapshot records; the data only they used is freed
by bulwark prune (or --prune here). Both take the repository's exclusive
lock: backups wait until they are done. --dry-run shows what would go.`,
		Example: `  bulwark forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune
  bulwark forget --keep-last 3 --dry-run
  bulwark forget 4f2a1c9e`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if within != "" {
				d, err := parseWithin(within)
				if err != nil {
					return usageError{err}
				}
				policy.Within = d
			}
			if len(args) == 0 && policy.Empty() {
				return usageError{errors.New("no policy: give --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag (or snapshot ids); forgetting every snapshot is refused")}
			}
			if len(args) > 0 && !policy.Empty() {
				return usageError{errors.New("give snapshot ids or a policy, not both")}
			}
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			groups, err := forget(ctx, repo, args, policy, host, dryRun)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !prune || dryRun {
				if g.json {
					return printJSON(out, map[string]any{"forget": groups})
				}
				printForget(out, groups, dryRun)
				return nil
			}
			if !g.json {
				printForget(out, groups, dryRun)
			}
			report, err := runPrune(ctx, g, repo)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(out, map[string]any{"forget": groups, "prune": report})
			}
			printPrune(out, report)
			return nil
		},
	}
	rf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&policy.Last, "keep-last", 0, "keep the N newest snapshots")
	f.IntVar(&policy.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours that have one")
	f.IntVar(&policy.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days that have one")
	f.IntVar(&policy.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N weeks that have one")
	f.IntVar(&policy.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months that have one")
	f.IntVar(&policy.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years that have one")
	f.StringVar(&within, "keep-within", "", "keep every snapshot younger than this (e.g. 7d, 1y6m, 36h)")
	f.StringArrayVar(&policy.Tags, "keep-tag", nil, "keep every snapshot with this tag (repeatable)")
	f.StringVar(&host, "host", "", "only consider snapshots of this host")
	f.BoolVar(&prune, "prune", false, "run prune afterwards to free the data no snapshot uses")
	f.BoolVar(&dryRun, "dry-run", false, "only show what would be removed")
	return cmd
}

// forgetGroup is what forget decided for one host and site.
type forgetGroup struct {
	Host      string           `json:"host"`
	Site      string           `json:"site"`
	Decisions []forgetDecision `json:"decisions"`
	Removed   int              `json:"removed"`
	DryRun    bool             `json:"dry_run,omitempty"`
}

type forgetDecision struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
}

// forget applies the policy (or removes the named snapshots) under the
// repository's exclusive lock.
func forget(ctx context.Context, repo *repository.Repository, refs []string, p retention.Policy, host string, dryRun bool) ([]forgetGroup, error) {
	lock, err := repo.Lock(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	all, err := repo.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var groups []forgetGroup
	if len(refs) > 0 {
		g := forgetGroup{DryRun: dryRun}
		for _, ref := range refs {
			s, err := repo.FindSnapshot(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", ref, err)
			}
			g.Decisions = append(g.Decisions, forgetDecision{ID: s.ID.String(), Time: s.Time, Reasons: []string{"named"}})
		}
		groups = append(groups, g)
	} else {
		groups = planForget(all, p, host, dryRun)
	}
	for gi := range groups {
		for _, d := range groups[gi].Decisions {
			if d.Keep || dryRun {
				continue
			}
			id, err := repository.ParseID(d.ID)
			if err != nil {
				return nil, err
			}
			if err := repo.RemoveSnapshot(ctx, id); err != nil {
				return groups, fmt.Errorf("remove snapshot %s: %w", d.ID[:8], err)
			}
			groups[gi].Removed++
		}
	}
	return groups, nil
}

// planForget groups the snapshots by host and site and applies the policy
// to each group.
func planForget(all []*repository.Snapshot, p retention.Policy, host string, dryRun bool) []forgetGroup {
	var order []string
	items := map[string][]retention.Item{}
	for _, s := range all {
		if host != "" && s.Host != host {
			continue
		}
		key := s.Host + "\x00" + s.Meta[archiver.MetaSite]
		if _, ok := items[key]; !ok {
			order = append(order, key)
		}
		items[key] = append(items[key], retention.Item{ID: s.ID.String(), Time: s.Time, Tags: s.Tags})
	}
	var groups []forgetGroup
	for _, key := range order {
		h, site, _ := strings.Cut(key, "\x00")
		g := forgetGroup{Host: h, Site: site, DryRun: dryRun}
		for _, d := range retention.Apply(items[key], p) {
			g.Decisions = append(g.Decisions, forgetDecision{ID: d.Item.ID, Time: d.Item.Time, Keep: d.Keep, Reasons: d.Reasons})
		}
		groups = append(groups, g)
	}
	return groups
}

func printForget(w io.Writer, groups []forgetGroup, dryRun bool) {
	for _, g := range groups {
		if g.Host != "" || g.Site != "" {
			fmt.Fprintf(w, "host %s, site %s:\n", g.Host, g.Site)
		}
		t := newTable(w, "ID", "TIME", "ACTION", "REASONS")
		removed := 0
		for _, d := range g.Decisions {
			action := "keep"
			if !d.Keep {
				action, removed = "remove", removed+1
				if dryRun {
					action = "would remove"
				}
			}
			t.row(d.ID[:8], d.Time.Local().Format("2006-01-02 15:04:05"), action, strings.Join(d.Reasons, ", "))
		}
		t.flush()
		verb := "removed"
		if dryRun {
			verb = "would remove"
		}
		fmt.Fprintf(w, "%s %d of %d snapshots\n\n", verb, removed, len(g.Decisions))
	}
}

var withinPattern = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$`)

// parseWithin reads restic's 2y5m7d3h (years, months, days, hours; a
// month is 30 days, a year 365) or a Go duration such as 36h or 90m0s.
func parseWithin(s string) (time.Duration, error) {
	if m := withinPattern.FindStringSubmatch(s); m != nil && s != "" {
		var d time.Duration
		for i, unit := range []time.Duration{365 * 24 * time.Hour, 30 * 24 * time.Hour, 24 * time.Hour, time.Hour} {
			if m[i+1] != "" {
				n, err := strconv.Atoi(m[i+1])
				if err != nil {
					return 0, fmt.Errorf("--keep-within %q: %w", s, err)
				}
				d += time.Duration(n) * unit
			}
		}
		if d > 0 {
			return d, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--keep-within %q: want a positive duration such as 7d, 1y6m or 36h", s)
	}
	return d, nil
}
