package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// The generation counts desired-state changes controller-wide: every
// apply that changes a spec, rollback and delete adds one (status writes
// do not). Watchers (the reconciler, later the gateway over the API)
// remember the generation they last acted on and wait for another.
//
// It is kept in the store's meta so it does not restart from zero, and it
// is bumped once more when the controller starts: a change whose counter
// update was lost in a crash, or a state restored from an older backup,
// still reads as a change to every watcher, which then re-lists.
const generationKey = "control.generation"

func (s *Service) loadGeneration(ctx context.Context) error {
	var gen int64
	b, err := s.store.Meta(ctx, generationKey)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("read generation: %w", err)
	default:
		if gen, err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return fmt.Errorf("read generation %q: %w", b, err)
		}
	}
	s.gen = gen + 1
	if err := s.store.PutMeta(ctx, generationKey, []byte(strconv.FormatInt(s.gen, 10))); err != nil {
		return fmt.Errorf("write generation: %w", err)
	}
	return nil
}

// bump records one desired-state change and wakes every watcher. The
// change itself is already durable; failing to persist the counter only
// costs remote watchers a re-list after the next restart, so it is logged.
func (s *Service) bump(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if err := s.store.PutMeta(context.WithoutCancel(ctx), generationKey, []byte(strconv.FormatInt(s.gen, 10))); err != nil {
		s.log.Warn("persist generation", "generation", s.gen, "err", err)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Generation is the current desired-state generation.
func (s *Service) Generation() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Changes waits until the generation is no longer since and returns the
// new one; a watcher passes the generation it last acted on (0 at first,
// which returns at once). It returns early, with the current generation
// and ctx's error, when ctx ends: a long-poll bounds its wait that way.
// Any since other than the current generation, a future one included
// (after a restore), returns at once, so a watcher can never wait forever
// on a counter that went back.
func (s *Service) Changes(ctx context.Context, since int64) (int64, error) {
	for {
		s.mu.Lock()
		gen, ch := s.gen, s.changed
		s.mu.Unlock()
		if gen != since {
			return gen, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return gen, ctx.Err()
		}
	}
}
