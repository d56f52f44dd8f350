package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource is a controller's routing endpoint in memory: it answers a
// poll at once when the generation differs, else waits for a change or
// for its context, and can be made to fail like an unreachable
// controller.
type fakeSource struct {
	mu      sync.Mutex
	table   *Table
	down    error
	changed chan struct{}
	polls   []int64 // the since of every poll
}

func newFakeSource() *fakeSource { return &fakeSource{changed: make(chan struct{})} }

func (s *fakeSource) set(gen int64, models string) {
	s.mu.Lock()
	s.table = &Table{Generation: gen, Models: []byte(models)}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeSource) fail(err error) {
	s.mu.Lock()
	s.down = err
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeSource) NextTable(ctx context.Context, since int64) (*Table, error) {
	for {
		s.mu.Lock()
		s.polls = append(s.polls, since)
		t, down, ch := s.table, s.down, s.changed
		s.mu.Unlock()
		switch {
		case down != nil:
			return nil, down
		case t != nil && t.Generation != since:
			return t, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// modelsDoc is a routing table's models section for iris on the fakes.
func modelsDoc(fakes ...*fakeReplica) string {
	var reps []string
	for _, f := range fakes {
		reps = append(reps, fmt.Sprintf(`{"address":%q,"zone":"a"}`, f.addr))
	}
	return fmt.Sprintf(`{"models":{"iris":{"replicas":[%s],"policy":{"health":{"interval":"10ms","timeout":"2s","rise":1,"fall":1},"hedge":{"enabled":false}}}}}`,
		strings.Join(reps, ","))
}

type followed struct {
	g    *Gateway
	f    *Follower
	base string
	stop context.CancelFunc
	done chan struct{}
}

// follow starts a gateway fed by src, caching in cache, and runs its
// follower.
func follow(t *testing.T, src TableSource, cache string, base func() (*Config, error)) *followed {
	t.Helper()
	if base == nil {
		base = func() (*Config, error) {
			return &Config{Defaults: DefaultPolicy(), Admin: AdminConfig{Token: "tok"}}, nil
		}
	}
	cfg, err := base()
	if err != nil {
		t.Fatal(err)
	}
	g, url := startGateway(t, cfg)
	f, err := NewFollower(g, FollowerOptions{Source: src, SourceName: "http://controller.test", CacheFile: cache, Base: base,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Restore(); err != nil {
		t.Logf("restore: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fw := &followed{g: g, f: f, base: url, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(fw.done)
		f.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-fw.done })
	return fw
}

func (fw *followed) generation() int64 { return fw.f.Status().Generation }

func TestFollowerAppliesTablesAndKeepsServingWhenTheControllerIsGone(t *testing.T) {
	a, b := newFake(t, modeOK), newFake(t, modeOK)
	src := newFakeSource()
	cache := filepath.Join(t.TempDir(), "gateway", "routing.json")
	fw := follow(t, src, cache, nil)
	if fw.g.Ready() {
		t.Fatal("ready with no table")
	}
	if msg := fw.g.notReady(); !strings.Contains(msg, "no routing table yet from the controller at http://controller.test") {
		t.Fatalf("not ready because %q", msg)
	}
	src.set(5, modelsDoc(a))
	waitFor(t, "generation 5 applied", func() bool { return fw.generation() == 5 })
	if r := infer(t, fw.base, "one"); r.status != 200 || r.replica != a.addr {
		t.Fatalf("HTTP %d from %q", r.status, r.replica)
	}
	src.set(6, modelsDoc(a, b))
	waitFor(t, "generation 6 applied", func() bool { return len(fw.g.Status().Models[0].Replicas) == 2 })

	// The controller goes away: the table stays, the status says so.
	src.fail(errors.New("connection refused"))
	waitFor(t, "disconnected", func() bool { return !fw.f.Status().Connected })
	for i := range 50 {
		if r := infer(t, fw.base, fmt.Sprint("r", i)); r.status != 200 {
			t.Fatalf("request %d with the controller down: HTTP %d %s", i, r.status, r.body)
		}
	}
	st := fw.g.Status().Routing
	if st == nil || st.Generation != 6 || st.Connected || !strings.Contains(st.LastError, "connection refused") || st.Updates != 2 || st.Confirmed == nil {
		t.Fatalf("routing status %+v", st)
	}
	if v := metricValue(t, fw.base, "bulwark_gateway_routing_generation"); v != 6 {
		t.Fatalf("generation metric %v", v)
	}
	if v := metricValue(t, fw.base, "bulwark_gateway_routing_controller_up"); v != 0 {
		t.Fatalf("controller_up metric %v with the controller down", v)
	}
	if v := metricValue(t, fw.base, "bulwark_gateway_routing_age_seconds"); v < 0 {
		t.Fatalf("age metric %v", v)
	}

	// Back: it reconnects and takes the next table.
	src.mu.Lock()
	src.down = nil
	src.mu.Unlock()
	src.set(7, modelsDoc(b))
	waitFor(t, "generation 7 applied", func() bool { return fw.generation() == 7 && fw.f.Status().Connected })
	if reps := fw.g.Status().Models[0].Replicas; len(reps) != 1 || reps[0].Address != b.addr {
		t.Fatalf("replicas after generation 7: %+v", reps)
	}
	// Polls named the generation applied, so none of them spun.
	src.mu.Lock()
	polls := append([]int64(nil), src.polls...)
	src.mu.Unlock()
	if polls[0] != 0 {
		t.Fatalf("first poll since %d, want 0 (answer at once)", polls[0])
	}
}

func TestFollowerRestoresFromTheCacheWhenTheControllerIsDown(t *testing.T) {
	a := newFake(t, modeOK)
	cache := filepath.Join(t.TempDir(), "routing.json")
	src := newFakeSource()
	fw := follow(t, src, cache, nil)
	src.set(9, modelsDoc(a))
	waitFor(t, "generation 9 applied", func() bool { return fw.generation() == 9 })
	waitFor(t, "cache written", func() bool { _, err := os.Stat(cache); return err == nil })
	fw.stop()
	<-fw.done

	// A new gateway, its controller unreachable from the start: it serves
	// the cached table.
	down := newFakeSource()
	down.fail(errors.New("dial tcp: connection refused"))
	fw2 := follow(t, down, cache, nil)
	st := fw2.f.Status()
	if st.Generation != 9 || !st.FromCache {
		t.Fatalf("restored status %+v", st)
	}
	if r := infer(t, fw2.base, "cached"); r.status != 200 || r.replica != a.addr {
		t.Fatalf("from the cache: HTTP %d from %q: %s", r.status, r.replica, r.body)
	}
	if !fw2.g.Ready() {
		t.Fatalf("not ready from the cache: %s", fw2.g.notReady())
	}
	fw2.stop()
	<-fw2.done

	// A controller whose state was restored from an older backup can count
	// up to the cached generation with another table: the contents decide.
	b := newFake(t, modeOK)
	restored := newFakeSource()
	restored.set(9, modelsDoc(b))
	fw3 := follow(t, restored, cache, nil)
	waitFor(t, "the restored controller's table applied", func() bool {
		st := fw3.g.Status()
		return len(st.Models) == 1 && st.Models[0].Replicas[0].Address == b.addr && !st.Routing.FromCache
	})
}

func TestFollowerRefusesACorruptCache(t *testing.T) {
	a := newFake(t, modeOK)
	cache := filepath.Join(t.TempDir(), "routing.json")
	if err := writeCache(cache, &cachedTable{Generation: 3, Confirmed: time.Now(), Models: []byte(modelsDoc(a))}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cache)
	i := bytes.Index(b, []byte(a.addr[len(a.addr)-2:]))
	b[i] ^= 1 // a flipped bit in a replica's address
	os.WriteFile(cache, b, 0o644)
	g, _ := startGateway(t, &Config{Defaults: DefaultPolicy()})
	down := newFakeSource()
	f, err := NewFollower(g, FollowerOptions{Source: down, CacheFile: cache, Base: func() (*Config, error) { return &Config{Defaults: DefaultPolicy()}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := f.Restore()
	if !errors.Is(err, ErrCacheCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") || gen != 0 {
		t.Fatalf("restore of a flipped bit: gen %d, err %v", gen, err)
	}
	if len(g.Status().Models) != 0 {
		t.Fatal("a corrupt cache was applied")
	}
	if after, _ := os.ReadFile(cache); !bytes.Equal(after, b) {
		t.Fatal("the corrupt cache was modified")
	}
}

func TestFollowerRefusesAnInvalidTableAndKeepsTheLast(t *testing.T) {
	a := newFake(t, modeOK)
	src := newFakeSource()
	fw := follow(t, src, "", nil)
	src.set(1, modelsDoc(a))
	waitFor(t, "generation 1", func() bool { return fw.generation() == 1 })
	src.set(2, `{"models":{"iris":{"replicas":[{"address":"ftp://nope"}]}}}`)
	waitFor(t, "generation 2 refused", func() bool { return fw.f.Status().Rejected == 1 })
	st := fw.f.Status()
	if st.Generation != 1 || !strings.Contains(st.LastError, "generation 2 refused") || !strings.Contains(st.LastError, "http") {
		t.Fatalf("status %+v", st)
	}
	if r := infer(t, fw.base, "x"); r.status != 200 {
		t.Fatalf("HTTP %d after a refused table", r.status)
	}
	if v := metricValue(t, fw.base, "bulwark_gateway_routing_updates_total", `result="rejected"`); v != 1 {
		t.Fatalf("rejected metric %v", v)
	}
	// An empty table is valid: the controller routes nothing.
	src.set(3, `{"models":{}}`)
	waitFor(t, "generation 3", func() bool { return fw.generation() == 3 })
	if len(fw.g.Status().Models) != 0 {
		t.Fatal("models left after an empty table")
	}
}

func TestFollowerMergesTheConfigFileModels(t *testing.T) {
	a, b, c := newFake(t, modeOK), newFake(t, modeOK), newFake(t, modeOK)
	dir := t.TempDir()
	file := filepath.Join(dir, "gateway.yaml")
	writeFile := func(extra string) {
		doc := fmt.Sprintf("zone: a\nadmin: {token: tok}\nmodels:\n  iris:\n    replicas: [{address: %q}]\n  triton:\n    replicas: [{address: %q}]\n%s", c.addr, b.addr, extra)
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("")
	src := newFakeSource()
	fw := follow(t, src, "", func() (*Config, error) { return LoadPartialConfig(file) })
	src.set(1, modelsDoc(a))
	waitFor(t, "generation 1", func() bool { return fw.generation() == 1 })
	st := fw.g.Status()
	if len(st.Models) != 2 || st.Zone != "a" {
		t.Fatalf("models %+v", st.Models)
	}
	for _, m := range st.Models {
		want := map[string]string{"iris": a.addr, "triton": b.addr}[m.Name]
		if len(m.Replicas) != 1 || m.Replicas[0].Address != want {
			t.Fatalf("model %s routes %+v, want %s (the controller wins for iris, the file keeps triton)", m.Name, m.Replicas, want)
		}
	}
	// A reload re-reads the file and keeps the controller's table.
	writeFile(fmt.Sprintf("  extra:\n    replicas: [{address: %q}]\n", c.addr))
	cfg, err := fw.f.Reload()
	if err == nil {
		err = fw.g.Update(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st := fw.g.Status(); len(st.Models) != 3 || st.Models[1].Replicas[0].Address != a.addr {
		t.Fatalf("after reload: %+v", st.Models)
	}
}

func TestLoadPartialConfig(t *testing.T) {
	dir := t.TempDir()
	for _, doc := range []string{"", "zone: b\n", "models: {}\n"} {
		p := filepath.Join(dir, "g.yaml")
		os.WriteFile(p, []byte(doc), 0o644)
		cfg, err := LoadPartialConfig(p)
		if err != nil || len(cfg.Models) != 0 || cfg.Listen != DefaultListen {
			t.Fatalf("%q: %+v %v", doc, cfg, err)
		}
	}
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte("zone: b\nlisten: [\n"), 0o644)
	if _, err := LoadPartialConfig(p); err == nil {
		t.Fatal("a broken file loaded")
	}
	os.WriteFile(p, []byte("zone: b\nlisen: x:1\n"), 0o644)
	if _, err := LoadPartialConfig(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestCacheRoundTrip(t *testing.T) {
	want := &cachedTable{Generation: 12, Source: "http://c", Confirmed: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Models: []byte(`{"models":{}}`)}
	b, err := encodeCache(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeCache(b)
	if err != nil || got.Generation != 12 || got.Source != "http://c" || !got.Confirmed.Equal(want.Confirmed) || string(got.Models) != `{"models":{}}` {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		if t2, err := decodeCache(c); err == nil && (t2.Generation != 12 || string(t2.Models) != `{"models":{}}`) {
			t.Fatalf("flipping byte %d changed the table without an error: %+v", i, t2)
		}
	}
}

func FuzzDecodeCache(f *testing.F) {
	good, _ := encodeCache(&cachedTable{Generation: 1, Confirmed: time.Unix(0, 0).UTC(), Models: []byte(`{"models":{}}`)})
	f.Add(good)
	f.Add([]byte(`{"format":1,"sha256":"","table":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := decodeCache(b)
		if err != nil {
			if !errors.Is(err, ErrCacheCorrupt) {
				t.Fatalf("error %v is not ErrCacheCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := encodeCache(tab)
		if err != nil {
			t.Fatal(err)
		}
		if tab2, err := decodeCache(again); err != nil || tab2.Generation != tab.Generation {
			t.Fatalf("re-decode: %+v %v", tab2, err)
		}
	})
}

func FuzzParseModels(f *testing.F) {
	f.Add([]byte(`{"models":{"iris":{"replicas":[{"address":"http://h:1","version":"1"}],"versions":[{"version":"1","weight":100}]}}}`))
	f.Add([]byte(`{"models":{}}`))
	f.Add([]byte("models:\n  m:\n    replicas: [{address: 'http://h'}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		models, err := parseModels(b)
		if err != nil {
			return
		}
		cfg := &Config{Defaults: DefaultPolicy(), Models: models}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed models do not validate: %v", err)
		}
	})
}
