package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/chunking"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/version"
)

// Mode says how the controller's state is copied.
type Mode string

// Modes of a backup.
const (
	Auto Mode = ""     // hot if the site runs, else cold
	Hot  Mode = "hot"  // ask the running controller for a consistent copy
	Cold Mode = "cold" // the site is stopped: read the state file itself
)

// Errors a caller maps to exit codes.
var (
	// ErrSiteRunning: a cold backup (or a restore into a site) found the
	// site running.
	ErrSiteRunning = errors.New("site is running")
	// ErrNotRunning: a hot backup found no controller to ask.
	ErrNotRunning = errors.New("no controller answers")
)

// Controller is the site's running controller (a *control.Client).
type Controller interface {
	BackupState(ctx context.Context, w io.Writer) (control.StateCopy, error)
	Watch(ctx context.Context, since int64, wait time.Duration) (int64, error)
}

// Options describe one backup. Site is required.
type Options struct {
	Site string
	Mode Mode
	// Controller is asked for the state in a hot backup, and whether the
	// site runs; nil when no controller is configured.
	Controller Controller
	Host       string // default: the machine's host name
	Tags       []string
	// Parent is the snapshot whose unchanged files (same size, mtime and
	// inode) are taken without reading them; nil reads everything. The
	// content is deduplicated against the whole repository either way.
	Parent *repository.Snapshot
	// Exclude lists absolute paths under the site to leave out (e.g. a
	// repository kept inside it).
	Exclude []string
	// Readers is how many files are read at once (0: 2); Workers how many
	// chunks are hashed and stored at once (0: GOMAXPROCS).
	Readers, Workers int
	// Budget bounds the bytes of chunks in flight (0: 32 MiB), in buffers
	// of the largest chunk size, at least two per reader.
	Budget   int64
	Chunking chunking.Options // zero: chunking.DefaultOptions
	// StateLockTimeout is how long the state file's lock is waited for
	// when deciding whether the site runs (0: 200ms).
	StateLockTimeout time.Duration
	// Started, when set, is called once the backup knows whether it is
	// hot or cold, before it reads the site (the CLI lowers its priority
	// for a hot one).
	Started func(Mode)
	// Progress, when set, is called about every ProgressInterval (0:
	// 250ms) and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	Logger           *slog.Logger
}

// Progress is how far a backup is.
type Progress struct {
	FilesDone  int64 `json:"files_done"`
	FilesTotal int64 `json:"files_total"`
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	NewBytes   int64 `json:"new_bytes"`
}

// Meta keys a snapshot made by Backup carries.
const (
	MetaSite            = "site"             // absolute path of the site directory
	MetaStateSource     = "state.source"     // controller, file or none
	MetaStateGeneration = "state.generation" // desired-state generation of the copy
	MetaDeployment      = "deployment."      // + name: model, versions and weights, replicas, revision
	MetaModel           = "model."           // + name: versions, comma-separated
)

// Backup takes a snapshot of a site: the controller's state as one
// consistent copy, the model store (versions are immutable; pushes in
// progress are skipped) and the rest of the site's files. It holds a
// shared lock on the repository meanwhile, so prune cannot run.
func Backup(ctx context.Context, repo *repository.Repository, opts Options) (*repository.Snapshot, error) {
	start := time.Now()
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	lock, err := repo.Lock(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))

	mode, sc, err := takeStateCopy(ctx, &opts)
	if err != nil {
		return nil, err
	}
	defer sc.remove()
	opts.Logger.Debug("backup", "site", opts.Site, "mode", mode, "state", sc.source)
	if opts.Started != nil {
		opts.Started(mode)
	}
	entries, err := walkSite(opts.Site, opts.Exclude, func(rel, why string) {
		opts.Logger.Warn("skipped", "path", rel, "why", why)
	})
	if err != nil {
		return nil, err
	}
	entries, err = addStateCopy(entries, sc, opts.Site)
	if err != nil {
		return nil, err
	}
	meta := siteMeta(ctx, opts, sc, entries)

	b := &builder{repo: repo, opts: &opts, parent: map[string]*repository.Node{}}
	if err := b.loadParent(ctx); err != nil {
		return nil, err
	}
	tree, err := b.build(ctx, entries)
	if err != nil {
		return nil, err
	}
	treeID, err := repo.SaveTree(ctx, tree)
	if err != nil {
		return nil, fmt.Errorf("save tree: %w", err)
	}
	if err := repo.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	snap := &repository.Snapshot{
		Time: start.UTC(), Host: opts.Host, Tags: opts.Tags, Kind: string(mode),
		SiteVersion: version.String(), Tree: treeID, Meta: meta,
		Summary: &repository.Summary{
			Files: b.files, Bytes: b.bytes,
			NewBlobs: int(b.count.newBlobs.Load()), NewBytes: b.count.newBytes.Load(),
			Duration: time.Since(start),
		},
	}
	if opts.Parent != nil {
		id := opts.Parent.ID
		snap.Parent = &id
	}
	if _, err := repo.SaveSnapshot(ctx, snap); err != nil {
		return nil, fmt.Errorf("save snapshot: %w", err)
	}
	return snap, nil
}

func (o *Options) defaults() error {
	if o.Site == "" {
		return errors.New("backup: no site directory")
	}
	abs, err := filepath.Abs(o.Site)
	if err != nil {
		return err
	}
	o.Site = abs
	if o.Host == "" {
		if o.Host, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w", err)
		}
	}
	if o.Readers <= 0 {
		o.Readers = 2
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Chunking == (chunking.Options{}) {
		o.Chunking = chunking.DefaultOptions
	}
	if o.Budget <= 0 {
		o.Budget = 32 << 20
	}
	if o.StateLockTimeout <= 0 {
		o.StateLockTimeout = 200 * time.Millisecond
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	slices.Sort(o.Tags)
	return nil
}

// addStateCopy puts the state copy into the listing as StatePath, with
// the state directory above it.
func addStateCopy(entries []entry, sc *stateCopy, site string) ([]entry, error) {
	if sc.path == "" {
		return entries, nil
	}
	info, err := os.Stat(sc.path)
	if err != nil {
		return nil, fmt.Errorf("state copy: %w", err)
	}
	dirInfo, err := os.Stat(filepath.Join(site, stateDir))
	if err != nil {
		// The controller keeps its state elsewhere: the snapshot still
		// holds it where a restored site's controller looks for it.
		dirInfo, err = os.Stat(filepath.Dir(sc.path))
		if err != nil {
			return nil, fmt.Errorf("state copy: %w", err)
		}
	}
	return append(entries,
		entry{rel: stateDir, abs: filepath.Join(site, stateDir), info: dirInfo},
		entry{rel: StatePath, abs: sc.path, info: info}), nil
}

// siteMeta records what the snapshot holds, for snapshots and diff.
func siteMeta(ctx context.Context, opts Options, sc *stateCopy, entries []entry) map[string]string {
	meta := map[string]string{MetaSite: opts.Site, MetaStateSource: sc.source}
	for name, versions := range modelVersions(entries) {
		slices.SortFunc(versions, compareVersions)
		meta[MetaModel+name] = strings.Join(versions, ",")
	}
	if sc.path == "" {
		return meta
	}
	sum, err := describeState(ctx, sc.path)
	if err != nil {
		// The copy is still backed up whole; only its summary is missing.
		opts.Logger.Warn("describe the state copy", "err", err)
		return meta
	}
	meta[MetaStateGeneration] = fmt.Sprint(sum.Generation)
	for _, d := range sum.Deployments {
		meta[MetaDeployment+d.Name] = DescribeDeployment(d)
	}
	return meta
}

// DescribeDeployment is a deployment's line in a snapshot's Meta.
func DescribeDeployment(d control.DeploymentSummary) string {
	var vs []string
	for _, v := range d.Versions {
		vs = append(vs, fmt.Sprintf("%s:%d", v.Version, v.Weight))
	}
	return fmt.Sprintf("model=%s versions=%s replicas=%d revision=%d", d.Model, strings.Join(vs, ","), d.Replicas, d.Revision)
}

// compareVersions orders numeric versions by value, before the others.
func compareVersions(a, b string) int {
	na, errA := strconv.Atoi(a)
	nb, errB := strconv.Atoi(b)
	switch {
	case errA == nil && errB == nil && na != nb:
		return na - nb
	case errA == nil && errB != nil:
		return -1
	case errA != nil && errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
