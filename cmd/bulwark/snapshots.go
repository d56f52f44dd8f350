package main

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newSnapshotsCmd(g *globals) *cobra.Command {
	var (
		rf   repoFlags
		host string
		tags []string
	)
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List the repository's snapshots, oldest first",
		Long: `Snapshots lists the snapshots in the repository, oldest first: id, time,
host, kind (hot or cold), tags, files and size, and the data each one added
(its new chunks, before compression).
--host and --tag filter. --json prints every field, the site facts (state
generation, deployments, model versions) and the summary included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			all, err := repo.Snapshots(ctx)
			if err != nil {
				return err
			}
			views := []snapshotView{}
			for _, s := range all {
				if (host == "" || s.Host == host) && hasTags(s, tags) {
					views = append(views, snapshotViewOf(s))
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), views)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "TIME", "HOST", "KIND", "TAGS", "FILES", "SIZE", "ADDED")
			for _, v := range views {
				files, size, added := "-", "-", "-"
				if v.Summary != nil {
					files = strconv.Itoa(v.Summary.Files)
					size = humanBytes(v.Summary.Bytes)
					added = humanBytes(v.Summary.NewBytes)
				}
				t.row(v.ShortID, v.Time.Local().Format("2006-01-02 15:04:05"), v.Host, v.Kind, strings.Join(v.Tags, ","), files, size, added)
			}
			return t.flush()
		},
	}
	rf.register(cmd)
	cmd.Flags().StringVar(&host, "host", "", "only snapshots of this host")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "only snapshots with this tag (repeatable: all of them)")
	return cmd
}

// snapshotView is a snapshot as the CLI prints it: the contract's fields
// with the id, which the stored form leaves out.
type snapshotView struct {
	ID          string              `json:"id"`
	ShortID     string              `json:"short_id"`
	Time        time.Time           `json:"time"`
	Host        string              `json:"host"`
	Tags        []string            `json:"tags,omitempty"`
	Parent      string              `json:"parent,omitempty"`
	Kind        string              `json:"kind"`
	SiteVersion string              `json:"site_version"`
	Site        string              `json:"site,omitempty"`
	Tree        string              `json:"tree"`
	Meta        map[string]string   `json:"meta,omitempty"`
	Summary     *repository.Summary `json:"summary,omitempty"`
}

func snapshotViewOf(s *repository.Snapshot) snapshotView {
	v := snapshotView{ID: s.ID.String(), ShortID: shortID(s.ID), Time: s.Time, Host: s.Host, Tags: s.Tags,
		Kind: s.Kind, SiteVersion: s.SiteVersion, Site: s.Meta[archiver.MetaSite], Tree: s.Tree.String(), Meta: s.Meta, Summary: s.Summary}
	if s.Parent != nil {
		v.Parent = s.Parent.String()
	}
	return v
}

// shortID is the first 8 hex digits of an id, as restic prints them.
func shortID(id repository.ID) string { return id.String()[:8] }

func hasTags(s *repository.Snapshot, want []string) bool {
	for _, t := range want {
		if !slices.Contains(s.Tags, t) {
			return false
		}
	}
	return true
}
