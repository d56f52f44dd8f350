package node

import (
	"os"
	"runtime/debug"
)

// Memory management. A node's memory is dominated by its models: the Go
// heap holds each loaded model about once (its weights), and loading one
// briefly needs its file's bytes and the model being built on top. Two
// things keep resident memory near that:
//
//   - after a reload that loaded something, the load's garbage (the file
//     bytes, decoded tensors) is collected and returned to the OS at once
//     (debug.FreeOSMemory) instead of lingering until the scavenger gets to
//     it; loads are rare, so the forced collection costs nothing that
//     matters;
//   - a soft memory limit (debug.SetMemoryLimit) makes the collector work
//     harder as the Go runtime's memory nears it, instead of letting the
//     heap grow to twice the live heap (GOGC=100), which with large models
//     doubles their cost. The limit never fails an allocation: past it the
//     collector runs more often (at most about half the CPU), no more.
//
// Config.MemoryLimit chooses the limit. Automatic (0), and only when the
// operator has not set GOMEMLIMIT, it is autoMemoryLimit of the models the
// node serves, set before a reload loads anything (so it covers the load
// too) and again once the reload is done.

// memoryHeadroom is the automatic limit's allowance on top of twice the
// models' size: the Go runtime, the HTTP server and requests in flight.
// The node's memory target is resident memory under twice the model files
// plus 50 MB; resident memory runs a few MB above what the limit counts
// (the binary's code, mainly), so the limit keeps that much in hand.
const memoryHeadroom = 40 << 20

// autoMemoryLimit is the automatic soft limit for models whose files total
// modelBytes: twice that, plus memoryHeadroom.
func autoMemoryLimit(modelBytes int64) int64 {
	return 2*modelBytes + memoryHeadroom
}

// memoryPolicy decides and applies the node's soft memory limit.
type memoryPolicy struct {
	configured int64                       // Config.MemoryLimit
	getenv     func(string) string         // os.Getenv; tests replace it
	setLimit   func(int64) int64           // debug.SetMemoryLimit; tests replace it
	freeOS     func()                      // debug.FreeOSMemory; tests replace it
	logf       func(msg string, kv ...any) // Info log
	applied    int64                       // last limit set; 0 before any
	logged     int64                       // last limit logged
	envLogged  bool
}

func newMemoryPolicy(configured int64, logf func(string, ...any)) *memoryPolicy {
	return &memoryPolicy{
		configured: configured, getenv: os.Getenv, setLimit: debug.SetMemoryLimit,
		freeOS: debug.FreeOSMemory, logf: logf,
	}
}

// limitFor returns the limit for models totalling modelBytes, and why; 0
// when the node leaves the limit alone.
func (p *memoryPolicy) limitFor(modelBytes int64) (limit int64, source string) {
	switch {
	case p.configured > 0:
		return p.configured, "configured"
	case p.configured < 0:
		return 0, ""
	case p.getenv("GOMEMLIMIT") != "":
		if !p.envLogged {
			p.envLogged = true
			p.logf("memory limit left to GOMEMLIMIT", "GOMEMLIMIT", p.getenv("GOMEMLIMIT"))
		}
		return 0, ""
	}
	return autoMemoryLimit(modelBytes), "automatic"
}

// apply sets the limit for models totalling modelBytes. A limit is only
// ever raised before a load (so the load is not squeezed by the limit for
// fewer models) and set exactly once the reload is done.
func (p *memoryPolicy) apply(modelBytes int64, loading bool) {
	limit, source := p.limitFor(modelBytes)
	if limit == 0 || (loading && limit <= p.applied) {
		return
	}
	if limit != p.applied {
		p.setLimit(limit)
		p.applied = limit
	}
	if !loading && limit != p.logged {
		p.logged = limit
		p.logf("memory limit set", "limit_bytes", limit, "limit_mib", limit>>20,
			"models_bytes", modelBytes, "source", source)
	}
}

// afterLoad returns a finished load's garbage to the operating system.
func (p *memoryPolicy) afterLoad() { p.freeOS() }
