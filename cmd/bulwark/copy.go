package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/repository"
)

// The source repository of copy and its password; the destination is
// found like every other command's repository.
const (
	envFromRepository   = "BULWARK_FROM_REPOSITORY"
	envFromPassword     = "BULWARK_FROM_PASSWORD"
	envFromPasswordFile = "BULWARK_FROM_PASSWORD_FILE"
)

func newCopyCmd(g *globals) *cobra.Command {
	var (
		dst              repoFlags
		from             string
		fromPasswordFile string
	)
	cmd := &cobra.Command{
		Use:   "copy --from REPO --to REPO [SNAP...]",
		Short: "Copy snapshots to another repository (off-site)",
		Long: `Copy copies snapshots from one repository to another, for example from the
site's own disk to a bucket at another site. Only the chunks the destination
lacks are sent; they are decrypted with the source's key and encrypted again
with the destination's, so the two repositories have their own passwords.
A snapshot keeps its id in the destination, and one already there is
skipped, so copying again sends nothing new. An interrupted copy resumes:
run it again and only what is missing is sent.

SNAP is an id, a unique id prefix or "latest"; none copies every snapshot.
The source is --from or $` + envFromRepository + `, its password from
--from-password-file, $` + envFromPasswordFile + ` or $` + envFromPassword + `
(else asked on the terminal). The destination is --to or $` + envRepository + `,
its password from --password-file, $` + envPasswordFile + ` or $` + envPassword + `.
Create the destination with bulwark repo init first.`,
		Example: `  bulwark copy --from /var/backups/site --to s3:https://s3.example.com/offsite/site
  bulwark copy --from /var/backups/site --to /mnt/offsite latest --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, srcLoc, err := openCopySource(ctx, g, from, fromPasswordFile)
			if err != nil {
				return err
			}
			defer src.Backend().Close()
			if dst.repo == "" && os.Getenv(envRepository) == "" {
				return usageError{fmt.Errorf("no destination repository: give --to or set $%s", envRepository)}
			}
			to, err := dst.open(ctx, g)
			if err != nil {
				return err
			}
			defer to.Backend().Close()
			if src.Config().ID == to.Config().ID {
				return usageError{fmt.Errorf("--from %s and --to are the same repository", srcLoc)}
			}
			snaps, err := copySelection(ctx, src, args)
			if err != nil {
				return err
			}
			bar := newProgress(g, "copy")
			report, err := repository.Copy(ctx, src, to, snaps, func(p repository.Progress) {
				bar.setPhase("copy " + p.Phase)
				bar.update(progressState{Done: p.Done, Total: p.Total, Unit: p.Unit})
			})
			bar.done()
			if err != nil {
				if report != nil && report.Blobs > 0 {
					err = fmt.Errorf("%w (%d chunks were sent; run copy again to resume)", err, report.Blobs)
				}
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), report)
			}
			printCopy(cmd.OutOrStdout(), report)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "source repository: a directory (or local:DIR), or s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] [$"+envFromRepository+"]")
	fl.StringVar(&fromPasswordFile, "from-password-file", "", "read the source repository's password from the first line of this file [$"+envFromPasswordFile+"]")
	fl.StringVar(&dst.repo, "to", "", "destination repository, a location like --from [$"+envRepository+"]")
	fl.StringVar(&dst.passwordFile, "password-file", "", "read the destination repository's password from the first line of this file [$"+envPasswordFile+"]")
	return cmd
}

// openCopySource opens the repository snapshots are copied from.
func openCopySource(ctx context.Context, g *globals, from, passwordFile string) (*repository.Repository, string, error) {
	loc := firstNonEmpty(from, os.Getenv(envFromRepository))
	if loc == "" {
		return nil, "", usageError{fmt.Errorf("no source repository: give --from or set $%s", envFromRepository)}
	}
	be, err := openBackend(loc, false, s3Flags{})
	if err != nil {
		return nil, "", err
	}
	var pw string
	if path := firstNonEmpty(passwordFile, os.Getenv(envFromPasswordFile)); path != "" {
		pw, err = passwordFromFile(path)
	} else if pw = os.Getenv(envFromPassword); pw == "" {
		pw, err = askPassword("enter password for source repository "+loc+": ", false,
			"--from-password-file, $"+envFromPasswordFile+" or $"+envFromPassword)
	}
	if err != nil {
		be.Close()
		return nil, "", err
	}
	repo, err := repository.OpenWithOptions(ctx, be, pw, repoOptions(g))
	if err != nil {
		be.Close()
		return nil, "", fmt.Errorf("open source repository %s: %w", loc, err)
	}
	return repo, loc, nil
}

// copySelection resolves the SNAP arguments in the source, each once, in
// the order given; none means every snapshot, oldest first.
func copySelection(ctx context.Context, src *repository.Repository, refs []string) ([]*repository.Snapshot, error) {
	if len(refs) == 0 {
		all, err := src.Snapshots(ctx)
		if err != nil {
			return nil, fmt.Errorf("list source snapshots: %w", err)
		}
		return all, nil
	}
	var out []*repository.Snapshot
	seen := make(map[repository.ID]bool)
	for _, ref := range refs {
		s, err := src.FindSnapshot(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("source snapshot %s: %w", ref, err)
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func printCopy(w io.Writer, r *repository.CopyReport) {
	ids := make([]string, len(r.Copied))
	for i, id := range r.Copied {
		ids[i] = shortID(id)
	}
	fmt.Fprintf(w, "copied %d snapshot(s)", r.Snapshots)
	if len(ids) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(ids, ", "))
	}
	fmt.Fprintln(w)
	if r.Skipped > 0 {
		fmt.Fprintf(w, "skipped %d already in the destination\n", r.Skipped)
	}
	fmt.Fprintf(w, "sent %d chunk(s), %s\n", r.Blobs, humanBytes(r.BytesCopied))
}
