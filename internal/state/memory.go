package state

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Store held in memory, for tests of the packages above this
// one: it passes the same conformance suite as Bolt, so code tested
// against it behaves the same on disk. Nothing survives the process.
type Memory struct {
	mu        sync.Mutex
	closed    bool
	records   map[string]*Record
	revisions map[string][]*Revision // ascending by number
	events    map[string][]Event     // oldest first
	meta      map[string][]byte
	maxEvents int
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store keeping DefaultMaxEvents per deployment.
func NewMemory() *Memory {
	return &Memory{
		records:   map[string]*Record{},
		revisions: map[string][]*Revision{},
		events:    map[string][]Event{},
		meta:      map[string][]byte{},
		maxEvents: DefaultMaxEvents,
	}
}

// memoryFormat names Memory's snapshot format, so ReadMemory can tell it
// from a Bolt file handed to it by mistake.
const memoryFormat = "bulwark-memory-state/1"

type memorySnapshot struct {
	Format    string                 `json:"format"`
	Records   map[string]*Record     `json:"records"`
	Revisions map[string][]*Revision `json:"revisions"`
	Events    map[string][]Event     `json:"events"`
	Meta      map[string][]byte      `json:"meta"`
}

// ReadMemory loads what Memory.Snapshot wrote.
func ReadMemory(r io.Reader) (*Memory, error) {
	var s memorySnapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return nil, fmt.Errorf("read memory snapshot: %w: %v", ErrCorrupt, err)
	}
	if s.Format != memoryFormat {
		return nil, fmt.Errorf("read memory snapshot: %w: format %q, want %q", ErrCorrupt, s.Format, memoryFormat)
	}
	m := NewMemory()
	maps.Copy(m.records, s.Records)
	maps.Copy(m.revisions, s.Revisions)
	maps.Copy(m.events, s.Events)
	maps.Copy(m.meta, s.Meta)
	return m, nil
}

// lock takes the mutex unless the store is closed; the caller unlocks.
func (m *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	return nil
}

func copyRecord(r *Record) *Record {
	c := *r
	c.Data = slices.Clone(r.Data)
	return &c
}

func copyRevision(r *Revision) *Revision {
	c := *r
	c.Data = slices.Clone(r.Data)
	return &c
}

func (m *Memory) Get(ctx context.Context, name string) (*Record, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	r, ok := m.records[name]
	if !ok {
		return nil, notFound(name)
	}
	return copyRecord(r), nil
}

func (m *Memory) List(ctx context.Context) ([]*Record, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []*Record
	for _, name := range slices.Sorted(maps.Keys(m.records)) {
		out = append(out, copyRecord(m.records[name]))
	}
	return out, nil
}

func (m *Memory) Apply(ctx context.Context, c Change) (*Record, error) {
	if err := checkChange(&c); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := time.Now().UTC()
	rev, events := stamp(&c, now)
	name := c.Record.Name
	var current int64
	if cur, ok := m.records[name]; ok {
		current = cur.ResourceVersion
	}
	if err := checkExpect(name, c.Expect, current); err != nil {
		return nil, err
	}
	revs := m.revisions[name]
	if rev != nil {
		var highest int64
		if len(revs) > 0 {
			highest = revs[len(revs)-1].Number
		}
		if err := checkRevisionNumber(name, rev.Number, highest); err != nil {
			return nil, err
		}
		revs = append(slices.Clip(revs), rev)
	}
	numbers := make([]int64, len(revs))
	for i, r := range revs {
		numbers[i] = r.Number
	}
	if p := c.Record.Revision; p != 0 && !slices.Contains(numbers, p) {
		return nil, errMissingRevision(name, p)
	}
	drop := prunable(numbers, c.KeepRevisions, c.Record.Revision)
	revs = slices.DeleteFunc(revs, func(r *Revision) bool { return slices.Contains(drop, r.Number) })

	rec := &Record{Name: name, ResourceVersion: current + 1, Revision: c.Record.Revision, Data: slices.Clone(c.Record.Data), Updated: now}
	m.records[name] = rec
	m.revisions[name] = revs
	m.appendEvents(name, events)
	return copyRecord(rec), nil
}

func (m *Memory) appendEvents(name string, events []Event) {
	all := append(m.events[name], events...)
	if len(all) > m.maxEvents {
		all = slices.Clone(all[len(all)-m.maxEvents:])
	}
	m.events[name] = all
}

func (m *Memory) Delete(ctx context.Context, name string, expect int64) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.records[name]
	if !ok {
		return notFound(name)
	}
	if cur.ResourceVersion != expect {
		return fmt.Errorf("deployment %q: resource version %d is stale (current %d): %w", name, expect, cur.ResourceVersion, ErrConflict)
	}
	delete(m.records, name)
	delete(m.revisions, name)
	delete(m.events, name)
	return nil
}

func (m *Memory) Revisions(ctx context.Context, name string) ([]*Revision, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if _, ok := m.records[name]; !ok {
		return nil, notFound(name)
	}
	var out []*Revision
	for _, r := range m.revisions[name] {
		out = append(out, copyRevision(r))
	}
	return out, nil
}

func (m *Memory) Revision(ctx context.Context, name string, number int64) (*Revision, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if _, ok := m.records[name]; !ok {
		return nil, notFound(name)
	}
	for _, r := range m.revisions[name] {
		if r.Number == number {
			return copyRevision(r), nil
		}
	}
	return nil, revisionNotFound(name, number)
}

func (m *Memory) AppendEvents(ctx context.Context, name string, events ...Event) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.records[name]; !ok {
		return notFound(name)
	}
	m.appendEvents(name, stampEvents(events, time.Now().UTC()))
	return nil
}

func (m *Memory) Events(ctx context.Context, name string, limit int) ([]Event, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if _, ok := m.records[name]; !ok {
		return nil, notFound(name)
	}
	all := m.events[name]
	if limit > 0 && len(all) > limit {
		all = all[len(all)-limit:]
	}
	return slices.Clone(all), nil
}

func (m *Memory) PutMeta(ctx context.Context, key string, value []byte) error {
	if err := checkName("meta", key); err != nil {
		return err
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.meta[key] = slices.Clone(value)
	return nil
}

func (m *Memory) Meta(ctx context.Context, key string) ([]byte, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	v, ok := m.meta[key]
	if !ok {
		return nil, metaNotFound(key)
	}
	return slices.Clone(v), nil
}

// Snapshot writes the whole state as JSON (memoryFormat); ReadMemory
// loads it. Records and revisions are immutable once stored, so encoding
// under the lock gives one consistent point.
func (m *Memory) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	data, err := json.Marshal(memorySnapshot{memoryFormat, m.records, m.revisions, m.events, m.meta})
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(data)
	return int64(n), err
}

// Close makes every later call fail, as on a closed Bolt.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
