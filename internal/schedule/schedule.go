package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Targets of a schedule, as status and metrics name them.
const (
	TargetLocal   = "local"
	TargetOffsite = "offsite"
)

// DefaultRetryLimit caps the default delay after a failed run.
const DefaultRetryLimit = time.Minute

// ErrInvalidConfig is returned by New for a configuration it cannot run.
var ErrInvalidConfig = errors.New("invalid schedule")

// Result is what one good run produced.
type Result struct {
	Snapshot string        // id of the snapshot taken or copied last
	Bytes    int64         // bytes backed up or copied
	Duration time.Duration // zero: measured by the scheduler
}

// Config describes a schedule. Interval and RunBackup are required.
type Config struct {
	Interval time.Duration
	// Retry is the delay after a failed run (default min(Interval, 1m)).
	Retry     time.Duration
	RunBackup func(context.Context) (Result, error)
	// RunForget applies the retention policy after a good backup; nil
	// keeps every snapshot. Its failure is logged and does not undo the
	// backup.
	RunForget func(context.Context) error
	// RunCopy copies to the off-site repository after a good backup; nil
	// when there is none. A failed copy is retried on its own, without
	// holding the next backup back.
	RunCopy func(context.Context) (Result, error)
	// LastLocal and LastOffsite are the times of the newest snapshot in
	// each repository when the schedule starts (zero: none), so the age
	// is right after a restart and a recent backup is not taken again.
	LastLocal, LastOffsite time.Time
	Now                    func() time.Time // default time.Now
	Logger                 *slog.Logger
}

// TargetStatus is the state of one target's runs.
type TargetStatus struct {
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	// AgeSeconds is how long ago the last good run was: the current RPO.
	// -1 when there has been none.
	AgeSeconds      float64 `json:"ageSeconds"`
	Snapshot        string  `json:"snapshot,omitempty"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"durationSeconds"`
	LastError       string  `json:"lastError,omitempty"` // of the last attempt, if it failed
	// ConsecutiveFailures counts the failed attempts since the last good one.
	ConsecutiveFailures int `json:"consecutiveFailures"`
}

// Status is the schedule's state: GET /api/v1/backups.
type Status struct {
	IntervalSeconds float64       `json:"intervalSeconds"`
	Local           TargetStatus  `json:"local"`
	Offsite         *TargetStatus `json:"offsite,omitempty"` // nil without an off-site repository
}

// Scheduler runs a Config. Status may be called from any goroutine.
type Scheduler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	targets map[string]*TargetStatus
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Interval <= 0 {
		return nil, errors.Join(ErrInvalidConfig, errors.New("interval must be positive"))
	}
	if cfg.RunBackup == nil {
		return nil, errors.Join(ErrInvalidConfig, errors.New("no backup to run"))
	}
	if cfg.Retry <= 0 {
		cfg.Retry = min(cfg.Interval, DefaultRetryLimit)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{cfg: cfg, log: log, targets: map[string]*TargetStatus{
		TargetLocal: {LastSuccess: cfg.LastLocal},
	}}
	if cfg.RunCopy != nil {
		s.targets[TargetOffsite] = &TargetStatus{LastSuccess: cfg.LastOffsite}
	}
	return s, nil
}

// Run takes a backup at once if the last good one is older than the
// interval, then one every interval, until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	now := s.cfg.Now()
	nextBackup := now
	if last := s.cfg.LastLocal; !last.IsZero() && now.Sub(last) < s.cfg.Interval {
		nextBackup = last.Add(s.cfg.Interval)
	}
	// A copy is owed at start too: the off-site may lack the newest local
	// snapshots. One with nothing to send is cheap.
	copyDue := s.cfg.RunCopy != nil
	nextCopy := now
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := nextBackup
		if copyDue && nextCopy.Before(next) {
			next = nextCopy
		}
		timer.Reset(max(next.Sub(s.cfg.Now()), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now = s.cfg.Now()
		if !now.Before(nextBackup) {
			if s.run(ctx, TargetLocal, s.cfg.RunBackup) {
				nextBackup = now.Add(s.cfg.Interval)
				s.forget(ctx)
				copyDue, nextCopy = s.cfg.RunCopy != nil, s.cfg.Now()
			} else {
				nextBackup = s.cfg.Now().Add(s.cfg.Retry)
			}
			continue
		}
		if copyDue && !now.Before(nextCopy) {
			if s.run(ctx, TargetOffsite, s.cfg.RunCopy) {
				copyDue = false
			} else {
				nextCopy = s.cfg.Now().Add(s.cfg.Retry)
			}
		}
	}
}

// run runs one target's job and records how it went.
func (s *Scheduler) run(ctx context.Context, target string, job func(context.Context) (Result, error)) bool {
	start := s.cfg.Now()
	res, err := job(ctx)
	if ctx.Err() != nil {
		return false // stopping: not a failure of the backup
	}
	end := s.cfg.Now()
	if res.Duration == 0 {
		res.Duration = end.Sub(start)
	}
	s.mu.Lock()
	t := s.targets[target]
	t.LastAttempt = start
	if err != nil {
		t.LastError = err.Error()
		t.ConsecutiveFailures++
	} else {
		t.LastError, t.ConsecutiveFailures = "", 0
		t.LastSuccess, t.Snapshot, t.Bytes, t.DurationSeconds = end, res.Snapshot, res.Bytes, res.Duration.Seconds()
	}
	failures := t.ConsecutiveFailures
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.observe(target, res, end, err)
	}
	if err != nil {
		s.log.Error("scheduled backup failed; retrying", "target", target, "err", err,
			"retry_in", s.cfg.Retry, "consecutive_failures", failures)
		return false
	}
	s.log.Info("scheduled backup done", "target", target, "snapshot", res.Snapshot,
		"bytes", res.Bytes, "duration", res.Duration)
	return true
}

func (s *Scheduler) forget(ctx context.Context) {
	if s.cfg.RunForget == nil {
		return
	}
	if err := s.cfg.RunForget(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("scheduled retention policy failed", "err", err)
	}
}

// Status reports every target's runs as of now.
func (s *Scheduler) Status() Status {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{IntervalSeconds: s.cfg.Interval.Seconds(), Local: s.view(TargetLocal, now)}
	if _, ok := s.targets[TargetOffsite]; ok {
		off := s.view(TargetOffsite, now)
		st.Offsite = &off
	}
	return st
}

// view copies one target's status with its age; s.mu is held.
func (s *Scheduler) view(target string, now time.Time) TargetStatus {
	t := *s.targets[target]
	t.AgeSeconds = -1
	if !t.LastSuccess.IsZero() {
		t.AgeSeconds = now.Sub(t.LastSuccess).Seconds()
	}
	return t
}
