package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/runtime"
)

// ModelStatus is the state of one model version, for the CLI and metadata.
type ModelStatus struct {
	Name    string
	Version string
	Format  string
	Latest  bool // served when a request names no version
	Ready   bool
	Reason  string // why the version is not ready
}

// modelVersion is one version as the node holds it. It is immutable once
// published; a reload replaces it with a new value.
type modelVersion struct {
	name, version string
	manifest      *modelstore.Manifest // nil if the manifest could not be read
	model         runtime.Model        // nil when not ready
	sig           runtime.Signature
	reason        string
	obs           *versionMetrics
}

func (v *modelVersion) ready() bool { return v.model != nil }

// modelEntry is one model: its versions and which is the latest.
type modelEntry struct {
	versions map[string]*modelVersion
	order    []string // oldest first, store order
}

func (e *modelEntry) latest() string { return e.order[len(e.order)-1] }

// manager loads the store's model versions and keeps their state.
type manager struct {
	store   *modelstore.Store
	rt      runtime.Runtime
	log     *slog.Logger
	metrics *metrics
	filter  modelFilter // which versions to load; nil: all (filter.go)

	reloadMu sync.Mutex    // one reload at a time; also held by close
	closed   bool          // guarded by reloadMu
	mem      *memoryPolicy // guarded by reloadMu

	mu     sync.RWMutex
	models map[string]*modelEntry
	loaded bool // the first reload has finished
}

// lookupError is a failed model lookup: 404, or 503 while the first load
// is still running (the model may simply not be loaded yet).
type lookupError struct {
	msg     string
	loading bool
}

func (e *lookupError) Error() string { return e.msg }

// reload scans the store and loads every version not yet ready, including
// versions that failed before: a restore may have repaired their files.
// Loaded versions are kept, even if their files have since vanished, so a
// damaged disk does not stop a model that is already in memory.
func (m *manager) reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if m.closed {
		return errors.New("node is closed")
	}
	names, err := m.store.Names()
	if err != nil {
		return fmt.Errorf("list models: %w", err)
	}
	loaded := false
	for _, name := range names {
		if !m.filter.allowsModel(name) {
			continue
		}
		versions, err := m.store.Versions(name)
		if err != nil {
			m.log.Warn("cannot list model versions", "model", name, "err", err)
			continue
		}
		for _, v := range versions {
			if !m.filter.allows(name, v) {
				continue
			}
			if cur := m.get(name, v); cur != nil && cur.ready() {
				continue
			}
			mv := m.load(ctx, name, v)
			loaded = true
			if err := ctx.Err(); err != nil {
				closeModel(mv)
				return err
			}
			m.publish(mv)
		}
	}
	if loaded {
		// Return the loads' garbage (file bytes, scratch) to the OS now
		// rather than whenever the scavenger gets to it.
		m.mem.afterLoad()
	}
	m.mem.apply(m.readyBytes(), false)
	m.mu.Lock()
	m.loaded = true
	m.mu.Unlock()
	return nil
}

func (m *manager) get(name, version string) *modelVersion {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e := m.models[name]; e != nil {
		return e.versions[version]
	}
	return nil
}

// publish makes a loaded (or failed) version visible to requests.
func (m *manager) publish(mv *modelVersion) {
	mv.obs = m.metrics.forVersion(mv.name, mv.version)
	m.metrics.setReady(mv.name, mv.version, mv.ready())
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.models[mv.name]
	if e == nil {
		e = &modelEntry{versions: map[string]*modelVersion{}}
		m.models[mv.name] = e
	}
	if old := e.versions[mv.version]; old == nil {
		e.order = append(e.order, mv.version)
		sort.Slice(e.order, func(i, j int) bool { return versionLess(e.order[i], e.order[j]) })
	} else if old.reason == mv.reason && !mv.ready() {
		mv = old // unchanged failure: keep the first record
	}
	e.versions[mv.version] = mv
}

// load verifies and loads one version. It never fails: a version that
// cannot be served comes back not ready, with the reason.
func (m *manager) load(ctx context.Context, name, version string) *modelVersion {
	mv := &modelVersion{name: name, version: version}
	man, err := m.store.Verify(name, version)
	mv.manifest = man
	if err == nil {
		src := runtime.Source{Name: name, Version: version, Format: man.Format, Path: m.store.Path(man, man.Primary)}
		// Cover the load with the limit for the models it will serve with
		// this one, so the collector keeps the load's transient memory in
		// check too.
		m.mem.apply(m.readyBytes()+man.Size(), true)
		var model runtime.Model
		model, err = safeLoad(ctx, m.rt, src)
		if err == nil {
			mv.model, mv.sig = model, model.Signature()
			m.log.Info("model version loaded", "model", name, "version", version)
			return mv
		}
		err = fmt.Errorf("load with %s: %w", m.rt.Name(), err)
	}
	mv.reason = err.Error()
	if prev := m.get(name, version); prev == nil || prev.reason != mv.reason {
		m.log.Error("model version not loaded", "model", name, "version", version, "reason", mv.reason)
	}
	return mv
}

// safeLoad turns a panicking runtime into an error, so one malformed model
// cannot take the node and every other model down with it.
func safeLoad(ctx context.Context, rt runtime.Runtime, src runtime.Source) (model runtime.Model, err error) {
	defer func() {
		if r := recover(); r != nil {
			model, err = nil, fmt.Errorf("runtime panicked: %v", r)
		}
	}()
	return rt.Load(ctx, src)
}

func closeModel(mv *modelVersion) {
	if mv != nil && mv.model != nil {
		mv.model.Close()
	}
}

// resolve finds a version; "" means the latest.
func (m *manager) resolve(name, version string) (*modelVersion, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.models[name]
	if e == nil {
		if !m.loaded {
			return nil, &lookupError{msg: fmt.Sprintf("model %q is not loaded yet: models are still loading", name), loading: true}
		}
		return nil, &lookupError{msg: fmt.Sprintf("model %q not found", name)}
	}
	if version == "" {
		version = e.latest()
	}
	mv := e.versions[version]
	if mv == nil {
		return nil, &lookupError{msg: fmt.Sprintf("model %q has no version %q (versions: %s)",
			name, version, strings.Join(e.order, ", "))}
	}
	return mv, nil
}

// versions returns a copy of a model's versions, oldest first.
func (m *manager) versions(name string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if e := m.models[name]; e != nil {
		return slices.Clone(e.order)
	}
	return nil
}

// readyBytes is the total file size of the versions that are serving.
func (m *manager) readyBytes() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var n int64
	for _, e := range m.models {
		for _, v := range e.versions {
			if v.ready() && v.manifest != nil {
				n += v.manifest.Size()
			}
		}
	}
	return n
}

// anyReady reports whether the first load finished and some version serves.
func (m *manager) anyReady() (loaded, ready bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, e := range m.models {
		for _, v := range e.versions {
			if v.ready() {
				return m.loaded, true
			}
		}
	}
	return m.loaded, false
}

func (m *manager) status() []ModelStatus {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ModelStatus
	names := make([]string, 0, len(m.models))
	for n := range m.models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := m.models[n]
		for _, v := range e.order {
			mv := e.versions[v]
			st := ModelStatus{Name: n, Version: v, Latest: v == e.latest(), Ready: mv.ready(), Reason: mv.reason}
			if mv.manifest != nil {
				st.Format = mv.manifest.Format
			}
			out = append(out, st)
		}
	}
	return out
}

// close releases every loaded model, after any running reload. Requests
// must have finished.
func (m *manager) close() {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	m.closed = true
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.models {
		for _, v := range e.versions {
			closeModel(v)
		}
	}
	m.models = map[string]*modelEntry{}
}

// versionLess orders versions as the model store does (numbers by value,
// then names), so "latest" means the same here as in the store.
func versionLess(a, b string) bool {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}
