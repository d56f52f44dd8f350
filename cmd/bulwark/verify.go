package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		rf       repoFlags
		readData bool
		subset   string
	)
	cmd := &cobra.Command{
		Use:   "verify [--read-data | --read-data-subset N%]",
		Short: "Check the repository's integrity",
		Long: `Verify checks the repository's structure: every pack the index names exists
with the right size, and every snapshot's tree and data blobs are indexed.
--read-data also downloads every pack and checks its hash and every blob's
authentication tag, compression and hash; --read-data-subset N% does so for
a random N% of the packs (a cheaper regular check).

Each problem names the pack, the blob, and every snapshot and file it
affects. Exit code 0 means no problem was found, 4 that some were.`,
		Example: "  bulwark verify\n  bulwark verify --read-data-subset 10%\n  bulwark verify --read-data --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := repository.CheckOptions{ReadData: readData}
			if subset != "" {
				if readData {
					return usageError{errors.New("--read-data and --read-data-subset exclude each other")}
				}
				frac, err := parseSubset(subset)
				if err != nil {
					return usageError{err}
				}
				opts.ReadData, opts.Subset = true, frac
			}
			ctx := cmd.Context()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			bar := newProgress(g, "verify")
			report, err := repo.Check(ctx, opts, func(p repository.Progress) {
				bar.setPhase("verify " + p.Phase)
				bar.update(progressState{Done: p.Done, Total: p.Total, Unit: p.Unit})
			})
			bar.done()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(out, report); err != nil {
					return err
				}
			} else {
				printCheck(out, report, opts)
			}
			if n := len(report.Problems); n > 0 {
				return fmt.Errorf("verify found %d problem(s) in the repository: %w", n, repository.ErrCorrupt)
			}
			return nil
		},
	}
	rf.register(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and check every pack")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and check a random share of the packs: N% or a fraction")
	return cmd
}

// parseSubset reads "10%", "2.5%" or "0.1" as a fraction in (0, 1].
func parseSubset(s string) (float64, error) {
	num, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(num, 64)
	if err == nil && pct {
		v /= 100
	}
	if err != nil || v <= 0 || v > 1 {
		return 0, fmt.Errorf("--read-data-subset %q: want a share such as 10%% (above 0, at most 100%%)", s)
	}
	return v, nil
}

func printCheck(w io.Writer, r *repository.CheckReport, opts repository.CheckOptions) {
	what := "structure"
	switch {
	case opts.ReadData && opts.Subset > 0 && opts.Subset < 1:
		what = fmt.Sprintf("structure and the data of %.4g%% of the packs", 100*opts.Subset)
	case opts.ReadData:
		what = "structure and all data"
	}
	fmt.Fprintf(w, "checked %s: %d packs, %d blobs\n", what, r.Packs, r.Blobs)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "no problems found")
		return
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "\npack %s", p.Pack)
		if p.Blob != nil {
			fmt.Fprintf(w, ", blob %s", p.Blob)
		}
		fmt.Fprintf(w, ": %s\n", p.Err)
		if len(p.Snapshots) > 0 {
			ids := make([]string, len(p.Snapshots))
			for i, id := range p.Snapshots {
				ids[i] = shortID(id)
			}
			fmt.Fprintf(w, "  snapshots affected: %s\n", strings.Join(ids, ", "))
		}
		for _, f := range p.Files {
			fmt.Fprintf(w, "  file affected: %s\n", f)
		}
	}
}
