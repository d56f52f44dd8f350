package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

func newBackupCmd(g *globals) *cobra.Command {
	var (
		rf        repoFlags
		cf        controllerFlags
		hot, cold bool
		force     bool
		tags      []string
		parentRef string
		host      string
		workers   int
		priority  string
	)
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Take a snapshot of the site into the repository",
		Long: `Backup stores a snapshot of the site (--site): the controller's state as
one transactionally consistent copy, every model version in the model store,
the admin token and the other configuration files. Logs, pushes in progress
and temporary files are left out.

--hot (the default while the site runs) asks the running controller for its
state over the API (--controller, token from the site) while serving goes
on. --cold (the default when it is stopped) reads the state file itself and
refuses if the site runs.

Only chunks the repository lacks are stored (incremental). Files whose size,
modification time and inode are unchanged since the parent snapshot are not
even read: the parent is the latest snapshot of this host and site, or
--parent SNAP (a differential backup against a chosen base); --force reads
everything. Every snapshot restores on its own.`,
		Example: `  bulwark backup --repo /backups/site
  bulwark backup --cold --tag before-upgrade
  bulwark backup --parent 4f2a1c9e   # differential against a full base`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hot && cold {
				return usageError{errors.New("--hot and --cold exclude each other")}
			}
			if priority != "auto" && priority != "low" && priority != "normal" {
				return usageError{fmt.Errorf("--priority %q: want auto, low or normal", priority)}
			}
			if force && parentRef != "" {
				return usageError{errors.New("--force and --parent exclude each other")}
			}
			ctx := cmd.Context()
			limitMemory()
			repo, err := rf.open(ctx, g)
			if err != nil {
				return err
			}
			defer repo.Backend().Close()
			opts := archiver.Options{Site: g.site, Tags: tags, Host: host, Workers: workers, Logger: g.log.With("component", "backup")}
			switch {
			case hot:
				opts.Mode = archiver.Hot
			case cold:
				opts.Mode = archiver.Cold
			}
			opts.Controller = cf.client(g)
			if opts.Host == "" {
				if opts.Host, err = os.Hostname(); err != nil {
					return err
				}
			}
			if !force {
				if opts.Parent, err = findParent(ctx, repo, parentRef, opts.Host, g.site); err != nil {
					return err
				}
			}
			if loc, err := rf.location(); err == nil {
				// A repository kept inside the site is not backed up into itself.
				if abs, err := filepath.Abs(loc); err == nil {
					opts.Exclude = append(opts.Exclude, abs)
				}
			}
			opts.Started = func(mode archiver.Mode) {
				if priority == "low" || (priority == "auto" && mode == archiver.Hot) {
					lowerPriority()
				}
			}
			bar := newProgress(g, "backup")
			opts.Progress = func(p archiver.Progress) {
				bar.update(progressState{Done: p.BytesDone, Total: p.BytesTotal, Unit: "bytes", FilesDone: p.FilesDone, FilesTotal: p.FilesTotal})
			}
			snap, err := archiver.Backup(ctx, repo, opts)
			bar.done()
			if err != nil {
				return err
			}
			return printBackup(cmd, g, snap)
		},
	}
	rf.register(cmd)
	cf.register(cmd)
	f := cmd.Flags()
	f.BoolVar(&hot, "hot", false, "copy the state from the running controller (default when the site runs)")
	f.BoolVar(&cold, "cold", false, "the site must be stopped: read its state file (default when it is stopped)")
	f.StringArrayVar(&tags, "tag", nil, "tag the snapshot (repeatable)")
	f.StringVar(&parentRef, "parent", "", "snapshot whose unchanged files are reused without reading (default: the latest of this host and site)")
	f.BoolVar(&force, "force", false, "read every file, reusing nothing from a parent")
	f.StringVar(&host, "host", "", "host name recorded in the snapshot (default: this machine's)")
	f.IntVar(&workers, "workers", 0, "chunks hashed, compressed and stored at once (default: the number of CPUs)")
	f.StringVar(&priority, "priority", "auto", "CPU priority: low (nice 10), normal, or auto (low for a hot backup, so serving comes first)")
	return cmd
}

// defaultMemoryLimit is the soft limit of the heap for backup and restore
// when $GOMEMLIMIT does not set one. What they hold is bounded (chunks in
// flight, packs being filled), but the garbage collector would otherwise
// let the heap grow to twice that before collecting; big byte buffers
// cost the collector little, so holding it near the live size is cheap.
const defaultMemoryLimit = 128 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// lowerPriority makes this process yield the CPU to the site it backs up:
// nice 10. Linux keeps the nice value per thread, so every thread of the
// process is changed (threads started later inherit it from the thread
// that starts them); elsewhere the call covers the process.
func lowerPriority() {
	const nice = 10
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		unix.Setpriority(unix.PRIO_PROCESS, 0, nice)
		return
	}
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil {
			unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
		}
	}
}

// findParent resolves --parent, or picks the latest snapshot of the same
// host and site (none is fine: the first backup reads everything).
func findParent(ctx context.Context, repo *repository.Repository, ref, host, site string) (*repository.Snapshot, error) {
	if ref != "" {
		s, err := repo.FindSnapshot(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("--parent %s: %w", ref, err)
		}
		return s, nil
	}
	abs, err := filepath.Abs(site)
	if err != nil {
		return nil, err
	}
	all, err := repo.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	for i := len(all) - 1; i >= 0; i-- {
		if s := all[i]; s.Host == host && s.Meta[archiver.MetaSite] == abs {
			return s, nil
		}
	}
	return nil, nil
}

func printBackup(cmd *cobra.Command, g *globals, snap *repository.Snapshot) error {
	out := cmd.OutOrStdout()
	if g.json {
		return printJSON(out, snapshotViewOf(snap))
	}
	sum := snap.Summary
	fmt.Fprintf(out, "snapshot %s saved (%s backup of %s", shortID(snap.ID), snap.Kind, snap.Meta[archiver.MetaSite])
	if gen := snap.Meta[archiver.MetaStateGeneration]; gen != "" {
		fmt.Fprintf(out, ", state generation %s", gen)
	}
	fmt.Fprintln(out, ")")
	if snap.Parent != nil {
		fmt.Fprintf(out, "parent:  %s\n", shortID(*snap.Parent))
	}
	if sum != nil {
		rate := ""
		if secs := sum.Duration.Seconds(); secs > 0 {
			rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(sum.Bytes)/secs)))
		}
		fmt.Fprintf(out, "files:   %d, %s\n", sum.Files, humanBytes(sum.Bytes))
		fmt.Fprintf(out, "added:   %d new blobs, %s\n", sum.NewBlobs, humanBytes(sum.NewBytes))
		fmt.Fprintf(out, "took:    %s%s\n", sum.Duration.Round(time.Millisecond), rate)
	}
	return nil
}
