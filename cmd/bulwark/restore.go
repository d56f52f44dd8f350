package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/restorer"
	"github.com/bulwark-ml/bulwark/internal/state"
)

func newRestoreCmd(g *globals) *cobra.Command {
	var (
		rf        repoFlags
		target    string
		start     bool
		stateOnly bool
		includes  []string
		workers   int
	)
	cmd := &cobra.Command{
		Use:   "restore SNAP (--target DIR | --site DIR [--start [-- UP-FLAGS...]] [--state-only])",
		Short: "Restore a snapshot into a directory, or as a site and start it",
		Long: `Restore writes snapshot SNAP (an id, a unique prefix, or latest) back to
disk. With --target DIR it restores the snapshot's files into DIR. With
--site DIR (given explicitly) it restores a site: the site must not be
running; --start then runs bulwark up on it (flags after -- go to up);
--state-only restores only the controller's state file
(state/controller.db), keeping the previous one beside it as
controller.db.pre-restore-TIME. A site restored into another directory
than the one it was backed up from forgets the replicas its state
recorded (they belong to the original site): its controller starts its
own.

The snapshot is checked before anything is written: absolute paths, "..",
or symlinks that leave the target refuse the whole restore. Files are
restored in parallel, each into a temporary file, checked against its
content hash, synced and renamed into place. A file whose data is damaged
in the repository fails alone: the others are restored, the failed ones are
named, and the exit code is 4. A full disk stops the restore without
leaving partial files.`,
		Example: `  bulwark restore latest --target /tmp/site-copy
  bulwark restore 4f2a1c9e --site /srv/bulwark-site --start
  bulwark restore latest --site /tmp/drill --start -- --listen 127.0.0.1:9000 --controller-listen 127.0.0.1:9100
  bulwark restore latest --site /srv/bulwark-site --state-only`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			siteGiven := cmd.Flags().Changed("site")
			var upArgs []string
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				args, upArgs = args[:dash], args[dash:]
			}
			switch {
			case len(args) != 1:
				return usageError{fmt.Errorf("restore takes one snapshot, got %d arguments (flags for up go after --)", len(args))}
			case len(upArgs) > 0 && !start:
				return usageError{errors.New("arguments after -- are for bulwark up: give --start")}
			case target != "" && (start || stateOnly):
				return usageError{errors.New("--target restores into a plain directory; --start and --state-only are for restoring a site with --site DIR")}
			case target == "" && !siteGiven:
				return usageError{errors.New("say where to restore: --target DIR, or --site DIR to restore a site")}
			case start && stateOnly:
				return usageError{errors.New("--start and --state-only exclude each other")}
			}
			into := target
			if into == "" {
				into = g.site
				if err := checkSiteStopped(into); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			limitMemory()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			snap, err := repo.FindSnapshot(ctx, args[0])
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", args[0], err)
			}
			opts := restorer.Options{Target: into, Workers: workers, Logger: g.log.With("component", "restore")}
			switch {
			case stateOnly:
				opts.Include = func(p string) bool { return p == archiver.StatePath }
				if err := keepPreviousState(into); err != nil {
					return err
				}
			case len(includes) > 0:
				opts.Include = includeFilter(includes)
			}
			bar := newProgress(g, "restore")
			opts.Progress = func(p restorer.Progress) {
				bar.update(progressState{Done: p.BytesDone, Total: p.BytesTotal, Unit: "bytes", FilesDone: p.FilesDone, FilesTotal: p.FilesTotal})
			}
			began := time.Now()
			res, err := restorer.Restore(ctx, repo, snap, opts)
			bar.done()
			if res != nil {
				if perr := printRestore(cmd, g, snap, into, res, time.Since(began)); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return err
			}
			if target == "" && !stateOnly {
				if err := forgetForeignReplicas(ctx, cmd, snap, into); err != nil {
					return err
				}
			}
			if !start {
				return nil
			}
			return startSite(g, into, upArgs)
		},
	}
	rf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "directory to restore the snapshot's files into")
	f.BoolVar(&start, "start", false, "with --site: run bulwark up on the restored site")
	f.BoolVar(&stateOnly, "state-only", false, "with --site: restore only the controller's state file")
	f.StringArrayVar(&includes, "include", nil, "restore only this path of the snapshot and what is under it (repeatable)")
	f.IntVar(&workers, "workers", 0, "files written at once (default 4)")
	return cmd
}

// includeFilter selects the given snapshot paths and everything below them.
func includeFilter(paths []string) func(string) bool {
	clean := make([]string, len(paths))
	for i, p := range paths {
		clean[i] = strings.Trim(filepath.ToSlash(filepath.Clean(p)), "/")
	}
	return func(p string) bool {
		for _, c := range clean {
			if c == "." || p == c || strings.HasPrefix(p, c+"/") {
				return true
			}
		}
		return false
	}
}

// checkSiteStopped refuses to restore into a site whose controller holds
// its state file.
func checkSiteStopped(site string) error {
	path := filepath.Join(site, filepath.FromSlash(archiver.StatePath))
	st, err := state.OpenBoltReadOnly(path, 200*time.Millisecond)
	if err == nil {
		st.Close()
	}
	if errors.Is(err, state.ErrLocked) {
		return fmt.Errorf("site %s is running (its controller holds %s): stop it before restoring into it: %w", site, archiver.StatePath, archiver.ErrSiteRunning)
	}
	return nil
}

// keepPreviousState links the current state file (if any) to a name beside
// it, so that restoring the state never loses the one it replaces.
func keepPreviousState(site string) error {
	path := filepath.Join(site, filepath.FromSlash(archiver.StatePath))
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	aside := path + ".pre-restore-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Link(path, aside); err != nil {
		return fmt.Errorf("keep the current state file before restoring: %w", err)
	}
	return nil
}

func printRestore(cmd *cobra.Command, g *globals, snap *repository.Snapshot, into string, res *restorer.Result, took time.Duration) error {
	out := cmd.OutOrStdout()
	if g.json {
		return printJSON(out, map[string]any{"snapshot": snap.ID.String(), "snapshot_time": snap.Time, "snapshot_site": snap.Meta[archiver.MetaSite],
			"target": into, "result": res, "seconds": took.Seconds()})
	}
	rate := ""
	if s := took.Seconds(); s > 0 {
		rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(res.Bytes)/s)))
	}
	fmt.Fprintf(out, "restored snapshot %s to %s: %d files (%s), %d directories, %d symlinks in %s%s\n",
		shortID(snap.ID), into, res.Files, humanBytes(res.Bytes), res.Dirs, res.Symlinks, took.Round(time.Millisecond), rate)
	for _, f := range res.Failed {
		fmt.Fprintf(out, "NOT restored: %s: %s\n", f.Path, f.Err)
	}
	return nil
}

// forgetForeignReplicas clears the replica records of a state restored
// into another site than the one it was backed up from
// (control.ForgetReplicas says why).
func forgetForeignReplicas(ctx context.Context, cmd *cobra.Command, snap *repository.Snapshot, site string) error {
	abs, err := filepath.Abs(site)
	if err != nil {
		return err
	}
	path := filepath.Join(abs, filepath.FromSlash(archiver.StatePath))
	if snap.Meta[archiver.MetaSite] == abs {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	st, err := state.OpenBolt(path, state.BoltOptions{})
	if err != nil {
		return fmt.Errorf("restored state: %w", err)
	}
	defer st.Close()
	if err := control.ForgetReplicas(ctx, st); err != nil {
		return fmt.Errorf("restored state: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "note: the snapshot was taken of site %s; its replica records were cleared, so this site's controller starts its own replicas\n", snap.Meta[archiver.MetaSite])
	return nil
}

// startSite replaces this process with bulwark up on the restored site, so
// that signals reach it as if it had been started directly.
func startSite(g *globals, site string, upArgs []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start the site: %w", err)
	}
	args := append([]string{exe, "--site", site, "--log-level", g.logLevel, "--log-format", g.logFormat, "up"}, upArgs...)
	fmt.Fprintf(os.Stdout, "starting the site: %s\n", strings.Join(args[1:], " "))
	return syscall.Exec(exe, args, os.Environ())
}
