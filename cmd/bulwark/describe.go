package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/control"
)

func newDescribeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "Show a resource of the controller in detail",
	}
	cmd.AddCommand(newDescribeDeploymentCmd(g))
	return cmd
}

// description is describe's --json output.
type description struct {
	Deployment *control.Deployment    `json:"deployment"`
	Revisions  []control.RevisionInfo `json:"revisions"`
	Events     []control.Event        `json:"events"`
}

func newDescribeDeploymentCmd(g *globals) *cobra.Command {
	var (
		events int
		cf     controllerFlags
	)
	cmd := &cobra.Command{
		Use:     "deployment NAME",
		Aliases: []string{"deployments", "deploy"},
		Short:   "Show a deployment's spec, status, revisions and recent events",
		Example: "  bulwark describe deployment iris",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c := cmd.Context(), cf.client(g)
			var desc description
			var err error
			if desc.Deployment, err = c.Get(ctx, args[0]); err != nil {
				return err
			}
			if desc.Revisions, err = c.Revisions(ctx, args[0]); err != nil {
				return err
			}
			if desc.Events, err = c.Events(ctx, args[0], events); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), desc)
			}
			return printDescription(cmd.OutOrStdout(), &desc)
		},
	}
	cmd.Flags().IntVar(&events, "events", 20, "how many recent events to show")
	cf.register(cmd)
	return cmd
}

func printDescription(w io.Writer, desc *description) error {
	d, s := desc.Deployment, &desc.Deployment.Spec
	vs := make([]string, len(s.Versions))
	for i, v := range s.Versions {
		vs[i] = fmt.Sprintf("%s (%d%%)", v.Version, v.Weight)
	}
	zones := "any"
	if len(s.Zones) > 0 {
		zones = strings.Join(s.Zones, ", ")
	}
	r := s.Rollout
	kv := newKV(w)
	kv.row("Name:", d.Metadata.Name)
	kv.row("Model:", s.Model)
	kv.row("Versions:", strings.Join(vs, ", "))
	kv.row("Replicas:", fmt.Sprintf("%d per version, zones %s", s.Replicas, zones))
	kv.row("Rollout:", fmt.Sprintf("maxSurge %d, readyTimeout %v, observe %v, maxErrorRate %v, maxP99Latency %v",
		r.MaxSurge, r.ReadyTimeout, r.Observe, r.MaxErrorRate, r.MaxP99Latency))
	kv.row("Policy:", policySummary(s.Policy))
	kv.row("History limit:", s.RevisionHistoryLimit)
	kv.row("Revision:", fmt.Sprintf("%d (resourceVersion %d)", d.Metadata.Revision, d.Metadata.ResourceVersion))
	kv.row("Created:", fmt.Sprintf("%s (%s ago)", d.Metadata.CreationTimestamp.Local().Format(time.DateTime), age(d.Metadata.CreationTimestamp)))
	if err := kv.flush(); err != nil {
		return err
	}

	st := d.Status
	if st == nil {
		st = &control.Status{}
	}
	fmt.Fprintln(w, "\nStatus:")
	kv = newKV(w)
	kv.row("  Phase:", phaseOf(d))
	kv.row("  Observed revision:", dashInt(st.ObservedRevision))
	kv.row("  Last good revision:", dashInt(st.LastGoodRevision))
	ready := readyOf(d)
	for _, v := range st.Versions {
		ready += fmt.Sprintf("  %s: %d/%d", v.Version, v.Ready, v.Desired)
	}
	kv.row("  Ready:", ready)
	kv.row("  Message:", dash(st.Message))
	if err := kv.flush(); err != nil {
		return err
	}
	if len(st.Conditions) > 0 {
		t := newTable(w, "  TYPE", "STATUS", "REASON", "MESSAGE")
		for _, c := range st.Conditions {
			t.row("  "+c.Type, c.Status, dash(c.Reason), dash(c.Message))
		}
		t.flush()
	}

	fmt.Fprintln(w, "\nRevisions:")
	t := newTable(w, "  REVISION", "CREATED", "VERSIONS(WEIGHTS)", "REPLICAS", "")
	for _, rev := range desc.Revisions {
		cur := ""
		if rev.Current {
			cur = "current"
		}
		t.row(fmt.Sprintf("  %d", rev.Revision), age(rev.Created)+" ago", versionWeights(rev.Spec.Versions), rev.Spec.Replicas, cur)
	}
	t.flush()

	fmt.Fprintln(w, "\nEvents:")
	if len(desc.Events) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	t = newTable(w, "  AGE", "TYPE", "REASON", "MESSAGE")
	for _, e := range desc.Events {
		t.row("  "+age(e.Time), e.Type, e.Reason, e.Message)
	}
	return t.flush()
}

// newKV is a table without a header, for "Key:  value" lines.
func newKV(w io.Writer) *table { return &table{tw: tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)} }

// policySummary flattens the policy overrides: "hedge.enabled=true, retry.attempts=2".
func policySummary(p map[string]any) string {
	if len(p) == 0 {
		return "gateway defaults"
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out = append(out, fmt.Sprintf("%s%s=%v", prefix, k, v))
		}
	}
	walk("", p)
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func dashInt(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
