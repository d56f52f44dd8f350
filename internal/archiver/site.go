package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-ml/bulwark/internal/atomicfile"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/state"
)

// Where things are in a site, relative to its directory.
const (
	// StatePath is the controller's state file; a snapshot always holds it
	// here, whichever file the controller used.
	StatePath = "state/controller.db"
	stateDir  = "state"
	logsDir   = "logs"
	// routingCache is where a gateway keeps the last routing table.
	routingCache = "gateway/routing.json"
)

// stateCopy is the consistent copy of the controller's state this backup
// holds: a temporary file, and where it came from.
type stateCopy struct {
	path   string // temporary file; empty when the site has no state
	source string // "controller" (hot), "file" (cold) or "none"
	gen    int64
}

func (c *stateCopy) remove() {
	if c.path != "" {
		os.RemoveAll(filepath.Dir(c.path))
	}
}

// takeStateCopy decides hot or cold and gets the state copy the snapshot
// will hold. A cold copy needs the state file free: a controller holding
// its lock, or any controller of this site answering, means the site runs.
func takeStateCopy(ctx context.Context, opts *Options) (Mode, *stateCopy, error) {
	statePath := filepath.Join(opts.Site, filepath.FromSlash(StatePath))
	tmpDir, err := os.MkdirTemp("", "bulwark-backup-state-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory for the state copy: %w", err)
	}
	cp := &stateCopy{path: filepath.Join(tmpDir, "controller.db"), source: "none"}
	fail := func(err error) (Mode, *stateCopy, error) {
		cp.remove()
		return "", nil, err
	}
	mode := opts.Mode
	if mode == Auto {
		mode = Cold
		if controllerAnswers(ctx, opts.Controller) || stateLocked(statePath, opts.StateLockTimeout) {
			mode = Hot
		}
	}
	switch mode {
	case Hot:
		if opts.Controller == nil {
			return fail(fmt.Errorf("hot backup of site %s: no controller to ask for the state: %w", opts.Site, ErrNotRunning))
		}
		got, err := hotCopy(ctx, opts.Controller, cp.path)
		if err != nil {
			return fail(fmt.Errorf("hot backup of site %s: %w", opts.Site, err))
		}
		cp.source, cp.gen = "controller", got.Generation
	case Cold:
		if controllerAnswers(ctx, opts.Controller) {
			return fail(runningError(opts.Site, "its controller answers"))
		}
		n, err := coldCopy(ctx, statePath, cp.path, opts.StateLockTimeout)
		switch {
		case errors.Is(err, state.ErrLocked):
			return fail(runningError(opts.Site, "its controller holds "+StatePath))
		case errors.Is(err, fs.ErrNotExist):
			os.Remove(cp.path)
			cp.path = "" // a site without a controller state yet
		case err != nil:
			return fail(fmt.Errorf("cold backup of site %s: %w", opts.Site, err))
		case n == 0:
			cp.path = ""
		default:
			cp.source = "file"
		}
		if cp.path == "" {
			os.RemoveAll(tmpDir)
		}
	default:
		return fail(fmt.Errorf("backup mode %q: want hot or cold", mode))
	}
	return mode, cp, nil
}

func runningError(site, why string) error {
	return fmt.Errorf("site %s is running (%s): stop it (Ctrl-C on bulwark up, or stop the controller) for a cold backup, or take a hot one with --hot: %w",
		site, why, ErrSiteRunning)
}

// controllerAnswers asks the site's controller (if one is configured) for
// its generation; since 0 returns at once (a running controller's
// generation is at least 1). A controller of another site refuses this
// site's token, so it does not count.
func controllerAnswers(ctx context.Context, c Controller) bool {
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := c.Watch(ctx, 0, time.Millisecond)
	return err == nil
}

// stateLocked reports whether a process holds the state file's lock.
func stateLocked(path string, timeout time.Duration) bool {
	st, err := state.OpenBoltReadOnly(path, timeout)
	if err == nil {
		st.Close()
	}
	return errors.Is(err, state.ErrLocked)
}

func hotCopy(ctx context.Context, c Controller, dst string) (control.StateCopy, error) {
	var got control.StateCopy
	err := writeNew(dst, func(f *os.File) (err error) {
		got, err = c.BackupState(ctx, f)
		return err
	})
	if err != nil {
		return got, fmt.Errorf("state copy from the controller: %w", err)
	}
	return got, nil
}

func coldCopy(ctx context.Context, src, dst string, timeout time.Duration) (int64, error) {
	var n int64
	err := writeNew(dst, func(f *os.File) (err error) {
		n, err = state.CopyBolt(ctx, src, f, timeout)
		return err
	})
	return n, err
}

// writeNew creates dst (mode 0600: the state names every deployment),
// fills it and syncs it; on error nothing is left.
func writeNew(dst string, fill func(*os.File) error) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// entry is one thing found in the site.
type entry struct {
	rel  string // slash-separated path in the snapshot
	abs  string // where to read it
	info fs.FileInfo
}

// excluded reports whether a site path is left out of every backup:
// runtime files (logs; the state directory, whose file is copied
// consistently instead; the gateway's cache of the routing table, whose
// replica addresses do not survive a restore and which the controller
// gives again), pushes in progress and temporary files.
func excluded(rel string, d fs.DirEntry) bool {
	name := d.Name()
	switch {
	case rel == logsDir || rel == stateDir || rel == routingCache:
		return true
	case strings.HasPrefix(name, ".staging-"): // a model version being pushed
		return true
	case strings.Contains(name, ".tmp-") && strings.HasPrefix(name, "."): // an atomic write in progress
		return true
	}
	return false
}

// walkSite lists the site's directories, files and symlinks (not the site
// itself), skipping what excluded says and the paths in skip (absolute,
// e.g. a repository kept inside the site). Other kinds of files (sockets,
// devices) are skipped with a warning.
func walkSite(site string, skip []string, warn func(rel, why string)) ([]entry, error) {
	root, err := filepath.Abs(site)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", site, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("site %s is not a directory", site)
	}
	var out []entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read site: %w", err)
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if excluded(rel, d) || skipped(p, skip) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile (a finished push's staging)
		}
		if err != nil {
			return fmt.Errorf("read site: %w", err)
		}
		if !info.Mode().IsRegular() && !info.IsDir() && info.Mode()&fs.ModeSymlink == 0 {
			warn(rel, "not a regular file, directory or symlink ("+info.Mode().Type().String()+")")
			return nil
		}
		out = append(out, entry{rel: rel, abs: p, info: info})
		return nil
	})
	return out, err
}

func skipped(p string, skip []string) bool {
	for _, s := range skip {
		if p == s {
			return true
		}
	}
	return false
}

// modelVersions finds the model versions among the entries: directories
// models/NAME/VERSION holding a manifest.json.
func modelVersions(entries []entry) map[string][]string {
	out := map[string][]string{}
	for _, e := range entries {
		dir, file := path.Split(e.rel)
		parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
		if file == "manifest.json" && len(parts) == 3 && parts[0] == "models" {
			out[parts[1]] = append(out[parts[1]], parts[2])
		}
	}
	return out
}
