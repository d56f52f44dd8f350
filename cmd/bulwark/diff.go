package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newDiffCmd(g *globals) *cobra.Command {
	var rf repoFlags
	cmd := &cobra.Command{
		Use:   "diff SNAP1 SNAP2",
		Short: "Show what changed between two snapshots",
		Long: `Diff compares two snapshots: files added, removed and changed (content,
type, target or mode) with their sizes, and the site facts the snapshots
recorded: deployments (model, versions and weights, replicas, revision),
model versions, and the state generation. SNAP is an id, a unique prefix, or
latest.`,
		Example: "  bulwark diff 4f2a1c9e latest",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			d, err := diffSnapshots(ctx, repo, args[0], args[1])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			d.print(cmd.OutOrStdout())
			return nil
		},
	}
	rf.register(cmd)
	return cmd
}

// fileChange is one path that differs.
type fileChange struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size"`
	What string `json:"what,omitempty"` // for a change: content, type, target or mode
}

// factChange is a site fact (deployment, model) that differs; From or To
// is empty when it was added or removed.
type factChange struct {
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

type snapshotDiff struct {
	From         snapshotView `json:"from"`
	To           snapshotView `json:"to"`
	Added        []fileChange `json:"added"`
	Removed      []fileChange `json:"removed"`
	Changed      []fileChange `json:"changed"`
	AddedBytes   int64        `json:"added_bytes"`
	RemovedBytes int64        `json:"removed_bytes"`
	ChangedBytes int64        `json:"changed_bytes"` // the changed files' sizes in the second snapshot
	Deployments  []factChange `json:"deployments"`
	Models       []factChange `json:"models"`
	Generation   *factChange  `json:"state_generation,omitempty"`
}

func diffSnapshots(ctx context.Context, repo *repository.Repository, ref1, ref2 string) (*snapshotDiff, error) {
	var snaps [2]*repository.Snapshot
	var trees [2]*repository.Tree
	for i, ref := range []string{ref1, ref2} {
		s, err := repo.FindSnapshot(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", ref, err)
		}
		t, err := repo.LoadTree(ctx, s.Tree)
		if err != nil {
			return nil, fmt.Errorf("tree of snapshot %s: %w", shortID(s.ID), err)
		}
		snaps[i], trees[i] = s, t
	}
	d := &snapshotDiff{From: snapshotViewOf(snaps[0]), To: snapshotViewOf(snaps[1]),
		Added: []fileChange{}, Removed: []fileChange{}, Changed: []fileChange{}}
	before := map[string]*repository.Node{}
	for i := range trees[0].Nodes {
		before[trees[0].Nodes[i].Path] = &trees[0].Nodes[i]
	}
	for i := range trees[1].Nodes {
		n := &trees[1].Nodes[i]
		old, ok := before[n.Path]
		delete(before, n.Path)
		switch {
		case !ok:
			d.Added = append(d.Added, fileChange{Path: n.Path, Type: n.Type, Size: n.Size})
			d.AddedBytes += n.Size
		default:
			if what := nodeChange(old, n); what != "" {
				d.Changed = append(d.Changed, fileChange{Path: n.Path, Type: n.Type, Size: n.Size, What: what})
				d.ChangedBytes += n.Size
			}
		}
	}
	for _, n := range before {
		d.Removed = append(d.Removed, fileChange{Path: n.Path, Type: n.Type, Size: n.Size})
		d.RemovedBytes += n.Size
	}
	slices.SortFunc(d.Removed, func(a, b fileChange) int { return strings.Compare(a.Path, b.Path) })
	d.Deployments = factChanges(snaps[0].Meta, snaps[1].Meta, archiver.MetaDeployment)
	d.Models = factChanges(snaps[0].Meta, snaps[1].Meta, archiver.MetaModel)
	if a, b := snaps[0].Meta[archiver.MetaStateGeneration], snaps[1].Meta[archiver.MetaStateGeneration]; a != b {
		d.Generation = &factChange{Name: "state generation", From: a, To: b}
	}
	return d, nil
}

// nodeChange says how a path changed, "" if it did not.
func nodeChange(a, b *repository.Node) string {
	switch {
	case a.Type != b.Type:
		return "type"
	case a.Type == "symlink" && a.Target != b.Target:
		return "target"
	case a.Type == "file" && (a.Size != b.Size || !sameHash(a.Hash, b.Hash) || !slices.Equal(a.Content, b.Content)):
		return "content"
	case a.Mode != b.Mode:
		return "mode"
	}
	return ""
}

func sameHash(a, b *repository.ID) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// factChanges compares the Meta entries under prefix.
func factChanges(a, b map[string]string, prefix string) []factChange {
	out := []factChange{}
	names := map[string]bool{}
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if name, ok := strings.CutPrefix(k, prefix); ok {
				names[name] = true
			}
		}
	}
	for name := range names {
		if from, to := a[prefix+name], b[prefix+name]; from != to {
			out = append(out, factChange{Name: name, From: from, To: to})
		}
	}
	slices.SortFunc(out, func(x, y factChange) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func (d *snapshotDiff) print(w io.Writer) {
	fmt.Fprintf(w, "comparing snapshot %s (%s) to %s (%s)\n\n", d.From.ShortID, d.From.Time.Local().Format("2006-01-02 15:04:05"),
		d.To.ShortID, d.To.Time.Local().Format("2006-01-02 15:04:05"))
	for _, c := range d.Added {
		fmt.Fprintf(w, "+ %s  %s\n", c.Path, sizeOf(c))
	}
	for _, c := range d.Removed {
		fmt.Fprintf(w, "- %s  %s\n", c.Path, sizeOf(c))
	}
	for _, c := range d.Changed {
		fmt.Fprintf(w, "M %s  %s (%s)\n", c.Path, sizeOf(c), c.What)
	}
	fmt.Fprintf(w, "\nfiles: %d added (%s), %d removed (%s), %d changed (%s)\n",
		len(d.Added), humanBytes(d.AddedBytes), len(d.Removed), humanBytes(d.RemovedBytes), len(d.Changed), humanBytes(d.ChangedBytes))
	printFacts(w, "deployments", d.Deployments)
	printFacts(w, "model versions", d.Models)
	if d.Generation != nil {
		fmt.Fprintf(w, "state generation: %s -> %s\n", orNone(d.Generation.From), orNone(d.Generation.To))
	}
}

func printFacts(w io.Writer, title string, changes []factChange) {
	if len(changes) == 0 {
		fmt.Fprintf(w, "%s: unchanged\n", title)
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, c := range changes {
		switch {
		case c.From == "":
			fmt.Fprintf(w, "  + %s: %s\n", c.Name, c.To)
		case c.To == "":
			fmt.Fprintf(w, "  - %s: %s\n", c.Name, c.From)
		default:
			fmt.Fprintf(w, "  ~ %s: %s -> %s\n", c.Name, c.From, c.To)
		}
	}
}

func sizeOf(c fileChange) string {
	if c.Type == "file" {
		return humanBytes(c.Size)
	}
	return c.Type
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
