package state

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// DefaultMaxEvents is how many events a store keeps per deployment unless
// told otherwise: enough to explain the last incidents, bounded so that a
// crash-looping deployment cannot grow the state without limit.
const DefaultMaxEvents = 1000

// maxNameLen bounds deployment names and meta keys, far below bbolt's key
// limit, so a name is always a valid key and nested bucket name.
const maxNameLen = 512

func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%s name is %d bytes, the limit is %d", kind, len(name), maxNameLen)
	}
	return nil
}

// checkChange rejects a malformed change before any transaction starts.
// Both stores share it so they refuse exactly the same changes.
func checkChange(c *Change) error {
	if err := checkName("deployment", c.Record.Name); err != nil {
		return err
	}
	if c.Expect < 0 || c.KeepRevisions < 0 || c.Record.Revision < 0 {
		return fmt.Errorf("deployment %q: negative expect, keep or revision", c.Record.Name)
	}
	if r := c.Revision; r != nil {
		if r.Name != "" && r.Name != c.Record.Name {
			return fmt.Errorf("deployment %q: revision names deployment %q", c.Record.Name, r.Name)
		}
		if r.Number < 1 {
			return fmt.Errorf("deployment %q: revision number %d, want 1 or more", c.Record.Name, r.Number)
		}
	}
	return nil
}

// checkExpect implements optimistic concurrency: current is the stored
// resource version, 0 when the record does not exist.
func checkExpect(name string, expect, current int64) error {
	switch {
	case expect == current:
		return nil
	case expect == 0:
		return fmt.Errorf("deployment %q already exists (resource version %d): %w", name, current, ErrConflict)
	case current == 0:
		return fmt.Errorf("deployment %q does not exist (expected resource version %d): %w", name, expect, ErrConflict)
	default:
		return fmt.Errorf("deployment %q: resource version %d is stale (current %d): %w", name, expect, current, ErrConflict)
	}
}

func checkRevisionNumber(name string, number, highest int64) error {
	if number <= highest {
		return fmt.Errorf("deployment %q: revision %d is not above the highest existing revision %d", name, number, highest)
	}
	return nil
}

func errMissingRevision(name string, number int64) error {
	return fmt.Errorf("deployment %q: the record points to revision %d, which does not exist", name, number)
}

// prunable returns the revision numbers (ascending in numbers) that keep
// drops: all but the newest keep, never the one the record points to.
func prunable(numbers []int64, keep int, pointed int64) []int64 {
	if keep <= 0 || len(numbers) <= keep {
		return nil
	}
	var drop []int64
	for _, n := range numbers[:len(numbers)-keep] {
		if n != pointed {
			drop = append(drop, n)
		}
	}
	return drop
}

// stamp fills the times a caller left zero, in UTC so that stores agree on
// the value after a round trip through JSON.
func stamp(c *Change, now time.Time) (*Revision, []Event) {
	var rev *Revision
	if c.Revision != nil {
		r := *c.Revision
		r.Name = c.Record.Name
		r.Data = slices.Clone(r.Data)
		if r.Created.IsZero() {
			r.Created = now
		}
		r.Created = r.Created.UTC()
		rev = &r
	}
	return rev, stampEvents(c.Events, now)
}

func stampEvents(events []Event, now time.Time) []Event {
	out := slices.Clone(events)
	for i := range out {
		if out[i].Time.IsZero() {
			out[i].Time = now
		}
		out[i].Time = out[i].Time.UTC()
	}
	return out
}

func notFound(name string) error {
	return fmt.Errorf("deployment %q: %w", name, ErrNotFound)
}

func revisionNotFound(name string, number int64) error {
	return fmt.Errorf("deployment %q revision %d: %w", name, number, ErrNotFound)
}

func metaNotFound(key string) error {
	return fmt.Errorf("meta %q: %w", key, ErrNotFound)
}

// errClosed is returned by every call on a closed store.
var errClosed = errors.New("state store is closed")
