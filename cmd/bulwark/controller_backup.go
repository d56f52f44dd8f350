package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/bearer"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/retention"
	"github.com/bulwark-ml/bulwark/internal/schedule"
)

// The off-site repository's password, for a controller that copies there.
const (
	envOffsitePassword     = "BULWARK_OFFSITE_PASSWORD"
	envOffsitePasswordFile = "BULWARK_OFFSITE_PASSWORD_FILE"
)

// scheduledTag marks the snapshots the controller's schedule takes.
const scheduledTag = "scheduled"

// backupScheduleFlags are the controller's scheduled-backup flags; no
// --backup-repo means no schedule.
type backupScheduleFlags struct {
	repo, passwordFile           string
	offsite, offsitePasswordFile string
	interval                     time.Duration
	keep                         retention.Policy
	pruneEvery                   time.Duration
}

func (f *backupScheduleFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "backup-repo", "", "take hot backups of this site into this repository on a schedule (a directory, or s3:...)")
	fl.StringVar(&f.passwordFile, "backup-password-file", "", "password of --backup-repo [$"+envPasswordFile+", $"+envPassword+"]")
	fl.DurationVar(&f.interval, "backup-interval", time.Hour, "time between scheduled backups")
	fl.IntVar(&f.keep.Last, "backup-keep-last", 0, "after each backup, keep only the N newest snapshots of this site (with the other --backup-keep-* rules)")
	fl.IntVar(&f.keep.Hourly, "backup-keep-hourly", 0, "keep the newest snapshot of each of the last N hours that have one")
	fl.IntVar(&f.keep.Daily, "backup-keep-daily", 0, "keep the newest snapshot of each of the last N days that have one")
	fl.IntVar(&f.keep.Weekly, "backup-keep-weekly", 0, "keep the newest snapshot of each of the last N weeks that have one")
	fl.IntVar(&f.keep.Monthly, "backup-keep-monthly", 0, "keep the newest snapshot of each of the last N months that have one")
	fl.DurationVar(&f.pruneEvery, "backup-prune-every", 0, "after a backup's forget, prune the repository when this long has passed since the last prune, freeing what forgotten snapshots alone held (0: never; e.g. 24h)")
	fl.StringVar(&f.offsite, "offsite-repo", "", "after each backup, copy this site's snapshots the off-site repository lacks there")
	fl.StringVar(&f.offsitePasswordFile, "offsite-password-file", "", "password of --offsite-repo [$"+envOffsitePasswordFile+", $"+envOffsitePassword+"]")
}

// backupSchedule is a controller's configured schedule.
type backupSchedule struct {
	g                          *globals
	local, offsite             string // locations
	localPassword, offsitePass string
	host                       string
	log                        *slog.Logger
	pruneEvery                 time.Duration
	lastPrune                  time.Time // the schedule runs forget from one goroutine
}

// newScheduler checks the repositories open with their passwords and
// builds the schedule; nil without --backup-repo. controllerURL and token
// reach this controller's own API, as bulwark backup --hot does.
func (f *backupScheduleFlags) newScheduler(ctx context.Context, g *globals, controllerURL, token string) (*schedule.Scheduler, error) {
	if f.repo == "" {
		if f.offsite != "" {
			return nil, usageError{errors.New("--offsite-repo needs --backup-repo")}
		}
		return nil, nil
	}
	if f.interval <= 0 {
		return nil, usageError{fmt.Errorf("--backup-interval %s: must be positive", f.interval)}
	}
	b := &backupSchedule{g: g, local: f.repo, log: g.log.With("component", "backup-schedule")}
	var err error
	if b.host, err = os.Hostname(); err != nil {
		return nil, err
	}
	if b.localPassword, err = passwordWithoutTerminal("--backup-password-file", f.passwordFile, envPasswordFile, envPassword); err != nil {
		return nil, err
	}
	cfg := schedule.Config{Interval: f.interval, Logger: b.log}
	if cfg.LastLocal, err = b.newest(ctx, b.local, b.localPassword); err != nil {
		return nil, err
	}
	controller := control.NewClient(controllerURL, token)
	cfg.RunBackup = func(ctx context.Context) (schedule.Result, error) { return b.backup(ctx, controller) }
	switch {
	case f.pruneEvery < 0:
		return nil, usageError{fmt.Errorf("--backup-prune-every %s: must not be negative", f.pruneEvery)}
	case f.pruneEvery > 0 && f.keep.Empty():
		return nil, usageError{errors.New("--backup-prune-every frees what forgotten snapshots held: give a --backup-keep-* rule too")}
	}
	if !f.keep.Empty() {
		policy := f.keep
		// The first prune is due one period after the start, not at every
		// restart of the controller.
		b.pruneEvery, b.lastPrune = f.pruneEvery, time.Now()
		cfg.RunForget = func(ctx context.Context) error { return b.forget(ctx, policy) }
	}
	if f.offsite != "" {
		b.offsite = f.offsite
		if b.offsitePass, err = passwordWithoutTerminal("--offsite-password-file", f.offsitePasswordFile, envOffsitePasswordFile, envOffsitePassword); err != nil {
			return nil, err
		}
		if cfg.LastOffsite, err = b.newest(ctx, b.offsite, b.offsitePass); err != nil {
			return nil, err
		}
		cfg.RunCopy = b.copy
	}
	return schedule.New(cfg)
}

// passwordWithoutTerminal reads a password from a file or the environment:
// a controller runs unattended, so there is no terminal to ask on.
func passwordWithoutTerminal(flag, file, envFile, env string) (string, error) {
	if path := firstNonEmpty(file, os.Getenv(envFile)); path != "" {
		return passwordFromFile(path)
	}
	if pw := os.Getenv(env); pw != "" {
		return pw, nil
	}
	return "", usageError{fmt.Errorf("scheduled backups need a repository password: give %s or set $%s or $%s", flag, envFile, env)}
}

// open opens a repository for one run: a fresh index each time, so
// another client's forget or prune in between is seen.
func (b *backupSchedule) open(ctx context.Context, loc, password string) (*repository.Repository, error) {
	be, err := openBackend(loc, false, s3Flags{})
	if err != nil {
		return nil, err
	}
	repo, err := repository.OpenWithOptions(ctx, be, password, repoOptions(b.g))
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("open repository %s: %w", loc, err)
	}
	return repo, nil
}

// ownSnapshots lists the snapshots of this host and site, oldest first.
func (b *backupSchedule) ownSnapshots(ctx context.Context, repo *repository.Repository) ([]*repository.Snapshot, error) {
	site, err := filepath.Abs(b.g.site)
	if err != nil {
		return nil, err
	}
	all, err := repo.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var own []*repository.Snapshot
	for _, s := range all {
		if s.Host == b.host && s.Meta[archiver.MetaSite] == site {
			own = append(own, s)
		}
	}
	return own, nil
}

// newest is the time of this site's newest snapshot in a repository (zero
// if none); opening it checks the location and password at startup.
func (b *backupSchedule) newest(ctx context.Context, loc, password string) (time.Time, error) {
	repo, err := b.open(ctx, loc, password)
	if err != nil {
		return time.Time{}, err
	}
	defer repo.Backend().Close()
	own, err := b.ownSnapshots(ctx, repo)
	if err != nil || len(own) == 0 {
		return time.Time{}, err
	}
	return own[len(own)-1].Time, nil
}

func (b *backupSchedule) backup(ctx context.Context, controller archiver.Controller) (schedule.Result, error) {
	repo, err := b.open(ctx, b.local, b.localPassword)
	if err != nil {
		return schedule.Result{}, err
	}
	defer repo.Backend().Close()
	opts := archiver.Options{
		Site: b.g.site, Mode: archiver.Hot, Controller: controller, Host: b.host,
		Tags: []string{scheduledTag}, Logger: b.log,
	}
	for _, loc := range []string{b.local, b.offsite} {
		// A repository kept inside the site is not backed up into itself.
		if abs, err := filepath.Abs(loc); err == nil && loc != "" {
			opts.Exclude = append(opts.Exclude, abs)
		}
	}
	if opts.Parent, err = findParent(ctx, repo, "", b.host, b.g.site); err != nil {
		return schedule.Result{}, err
	}
	snap, err := archiver.Backup(ctx, repo, opts)
	if err != nil {
		return schedule.Result{}, err
	}
	res := schedule.Result{Snapshot: snap.ID.String()}
	if snap.Summary != nil {
		res.Bytes, res.Duration = snap.Summary.Bytes, snap.Summary.Duration
	}
	return res, nil
}

func (b *backupSchedule) forget(ctx context.Context, policy retention.Policy) error {
	repo, err := b.open(ctx, b.local, b.localPassword)
	if err != nil {
		return err
	}
	defer repo.Backend().Close()
	groups, err := forget(ctx, repo, nil, policy, b.host, false)
	for _, g := range groups {
		if g.Removed > 0 {
			b.log.Info("retention policy removed snapshots", "site", g.Site, "removed", g.Removed, "policy", policy.String())
		}
	}
	if err != nil || b.pruneEvery == 0 || time.Since(b.lastPrune) < b.pruneEvery {
		return err
	}
	began := time.Now()
	rep, err := repo.Prune(ctx, nil)
	if err != nil {
		// Retried at the next forget: a prune that failed deleted nothing
		// it should not have (see Repository.Prune).
		return fmt.Errorf("scheduled prune: %w", err)
	}
	b.lastPrune = time.Now()
	b.log.Info("scheduled prune done", "packs_removed", rep.PacksRemoved, "packs_rewritten", rep.PacksRewritten,
		"bytes_freed", rep.BytesFreed, "duration", time.Since(began).Round(time.Millisecond))
	return nil
}

// copy sends the off-site repository this site's snapshots it lacks.
func (b *backupSchedule) copy(ctx context.Context) (schedule.Result, error) {
	start := time.Now()
	src, err := b.open(ctx, b.local, b.localPassword)
	if err != nil {
		return schedule.Result{}, err
	}
	defer src.Backend().Close()
	dst, err := b.open(ctx, b.offsite, b.offsitePass)
	if err != nil {
		return schedule.Result{}, fmt.Errorf("off-site: %w", err)
	}
	defer dst.Backend().Close()
	own, err := b.ownSnapshots(ctx, src)
	if err != nil {
		return schedule.Result{}, err
	}
	report, err := repository.Copy(ctx, src, dst, own, nil)
	if err != nil {
		return schedule.Result{}, err
	}
	res := schedule.Result{Bytes: report.BytesCopied, Duration: time.Since(start)}
	if len(own) > 0 {
		res.Snapshot = own[len(own)-1].ID.String()
	}
	return res, nil
}

// withBackupRoutes serves the schedule's status (GET /api/v1/backups,
// behind the token) and its metrics (GET /metrics, for Prometheus) beside
// the controller's API.
func withBackupRoutes(api http.Handler, s *schedule.Scheduler, token string) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		return nil, fmt.Errorf("backup metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/backups", bearer.Require(token, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		printJSON(w, s.Status())
	})))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", api)
	return mux, nil
}

// errNoSchedule: the controller answers but runs no backup schedule.
var errNoSchedule = errors.New("the controller runs no backup schedule")

// fetchBackups asks a controller for its backup schedule's status.
func fetchBackups(ctx context.Context, baseURL, token string) (*schedule.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/api/v1/backups", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNoSchedule
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET /api/v1/backups: HTTP %d", resp.StatusCode)
	}
	var st schedule.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET /api/v1/backups: %w", err)
	}
	return &st, nil
}
