package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
)

// fakeMemory records what a memoryPolicy does instead of doing it.
type fakeMemory struct {
	mu     sync.Mutex
	env    string
	limits []int64
	frees  int
	logs   []string
}

func (f *fakeMemory) install(p *memoryPolicy) *memoryPolicy {
	p.getenv = func(k string) string {
		if k == "GOMEMLIMIT" {
			return f.env
		}
		return ""
	}
	p.setLimit = func(l int64) int64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.limits = append(f.limits, l)
		return 0
	}
	p.freeOS = func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.frees++
	}
	p.logf = func(msg string, kv ...any) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.logs = append(f.logs, msg+fmt.Sprint(kv...))
	}
	return p
}

func TestMemoryPolicy(t *testing.T) {
	const mib = 1 << 20
	t.Run("automatic", func(t *testing.T) {
		f := &fakeMemory{}
		p := f.install(newMemoryPolicy(0, nil))
		p.apply(100*mib, true) // before loading a 100 MiB model
		p.apply(100*mib, false)
		p.apply(100*mib, false) // unchanged: neither set nor logged again
		p.apply(130*mib, true)  // a second model loading: raised
		p.apply(30*mib, false)  // ...but only the 30 MiB one loaded
		want := []int64{autoMemoryLimit(100 * mib), autoMemoryLimit(130 * mib), autoMemoryLimit(30 * mib)}
		if !slices.Equal(f.limits, want) {
			t.Errorf("limits %v, want %v", f.limits, want)
		}
		if autoMemoryLimit(100*mib) != 240*mib {
			t.Errorf("automatic limit for 100 MiB = %d MiB, want 240", autoMemoryLimit(100*mib)/mib)
		}
		if len(f.logs) != 2 || !strings.Contains(f.logs[0], "memory limit set") || !strings.Contains(f.logs[1], "automatic") {
			t.Errorf("logs %q, want two 'memory limit set'", f.logs)
		}
	})
	t.Run("loading never lowers", func(t *testing.T) {
		f := &fakeMemory{}
		p := f.install(newMemoryPolicy(0, nil))
		p.apply(200*mib, false)
		p.apply(200*mib+10, true) // a load that needs more raises it
		p.apply(10*mib, true)     // one that needs less does not lower it
		if len(f.limits) != 2 || f.limits[1] != autoMemoryLimit(200*mib+10) {
			t.Errorf("limits %v", f.limits)
		}
	})
	t.Run("GOMEMLIMIT wins over automatic", func(t *testing.T) {
		f := &fakeMemory{env: "1GiB"}
		p := f.install(newMemoryPolicy(0, nil))
		p.apply(100*mib, true)
		p.apply(100*mib, false)
		p.apply(100*mib, false)
		if len(f.limits) != 0 {
			t.Errorf("set %v despite GOMEMLIMIT", f.limits)
		}
		if len(f.logs) != 1 || !strings.Contains(f.logs[0], "GOMEMLIMIT") {
			t.Errorf("logs %q, want one about GOMEMLIMIT", f.logs)
		}
	})
	t.Run("configured", func(t *testing.T) {
		f := &fakeMemory{env: "1GiB"}
		p := f.install(newMemoryPolicy(300*mib, nil))
		p.apply(100*mib, true)
		p.apply(500*mib, false)
		if !slices.Equal(f.limits, []int64{300 * mib}) {
			t.Errorf("limits %v, want only the configured one", f.limits)
		}
	})
	t.Run("off", func(t *testing.T) {
		f := &fakeMemory{}
		p := f.install(newMemoryPolicy(-1, nil))
		p.apply(100*mib, true)
		p.apply(100*mib, false)
		if len(f.limits) != 0 || len(f.logs) != 0 {
			t.Errorf("limits %v logs %q, want none", f.limits, f.logs)
		}
	})
}

// A reload that loads something returns memory to the OS, having covered
// each load with the limit for the models it would make; then the limit is
// set from the sizes of the versions that serve.
func TestReloadSettlesMemory(t *testing.T) {
	var a *modelstore.Manifest
	n := newTestNode(t, Config{MemoryLimit: -1}, func(st *modelstore.Store) {
		a = push(t, st, "a", "1", "scale=2")
	})
	f := &fakeMemory{}
	n.srv.models.mem = f.install(newMemoryPolicy(0, nil))
	reload := func() {
		t.Helper()
		if err := n.srv.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	reload() // nothing to load
	if f.frees != 0 || !slices.Equal(f.limits, []int64{autoMemoryLimit(a.Size())}) {
		t.Fatalf("nothing loaded: frees %d, limits %v", f.frees, f.limits)
	}

	b := push(t, n.store, "b", "1", "not a model")
	reload()
	if f.frees != 1 {
		t.Errorf("FreeOSMemory called %d times, want 1", f.frees)
	}
	if !slices.Contains(f.limits, autoMemoryLimit(a.Size()+b.Size())) {
		t.Errorf("limits %v: the load of b was not covered", f.limits)
	}
	if last := f.limits[len(f.limits)-1]; last != autoMemoryLimit(a.Size()) {
		t.Errorf("limit %d after b failed, want %d (a only)", last, autoMemoryLimit(a.Size()))
	}

	c := push(t, n.store, "c", "1", "scale=3")
	reload()
	if last := f.limits[len(f.limits)-1]; last != autoMemoryLimit(a.Size()+c.Size()) {
		t.Errorf("limit %d after c loaded, want %d", last, autoMemoryLimit(a.Size()+c.Size()))
	}
}
