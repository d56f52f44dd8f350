package schedule

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a fake of the jobs: it records the order of calls and fails
// the calls it is told to.
type recorder struct {
	mu    sync.Mutex
	calls []string
	fail  func(job string, n int) bool // n: the job's calls so far, from 1
}

func (r *recorder) job(name string, bytes int64) func(context.Context) (Result, error) {
	return func(context.Context) (Result, error) {
		r.mu.Lock()
		r.calls = append(r.calls, name)
		n := r.count(name)
		r.mu.Unlock()
		if r.fail != nil && r.fail(name, n) {
			return Result{}, errors.New(name + " failed")
		}
		return Result{Snapshot: name, Bytes: bytes, Duration: 2 * time.Second}, nil
	}
}

// count is how many times job ran; r.mu is held.
func (r *recorder) count(job string) int {
	n := 0
	for _, c := range r.calls {
		if c == job {
			n++
		}
	}
	return n
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// start runs s until the test ends.
func start(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metricValue reads one series of reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestFailedBackupIsRetried(t *testing.T) {
	rec := &recorder{fail: func(job string, n int) bool { return job == "backup" && n == 1 }}
	s, err := New(Config{Interval: time.Hour, Retry: time.Millisecond, RunBackup: rec.job("backup", 100)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	start(t, s)
	waitFor(t, "a good backup", func() bool { return !s.Status().Local.LastSuccess.IsZero() })

	st := s.Status().Local
	if st.LastError != "" || st.ConsecutiveFailures != 0 || st.Bytes != 100 || st.DurationSeconds != 2 || st.Snapshot != "backup" {
		t.Errorf("status after the retry = %+v", st)
	}
	if got := rec.snapshot(); !slices.Equal(got, []string{"backup", "backup"}) {
		t.Errorf("calls = %v, want a failed backup and its retry", got)
	}
	for result, want := range map[string]float64{"failure": 1, "success": 1} {
		if got := metricValue(t, reg, "bulwark_backup_runs_total", map[string]string{"target": "local", "result": result}); got != want {
			t.Errorf("runs_total{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := metricValue(t, reg, "bulwark_backup_last_bytes", map[string]string{"target": "local"}); got != 100 {
		t.Errorf("last_bytes = %v", got)
	}
	if got := metricValue(t, reg, "bulwark_backup_last_duration_seconds", map[string]string{"target": "local"}); got != 2 {
		t.Errorf("last_duration_seconds = %v", got)
	}
}

func TestCopyFailureDoesNotBlockBackups(t *testing.T) {
	rec := &recorder{fail: func(job string, _ int) bool { return job == "copy" }}
	s, err := New(Config{
		Interval: 5 * time.Millisecond, Retry: time.Hour,
		RunBackup: rec.job("backup", 1), RunForget: func(context.Context) error {
			rec.job("forget", 0)(context.Background())
			return nil
		},
		RunCopy: rec.job("copy", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	waitFor(t, "three backups", func() bool {
		calls := rec.snapshot()
		return len(calls) >= 9 && slices.Equal(calls[:9], slices.Repeat([]string{"backup", "forget", "copy"}, 3))
	})
	st := s.Status()
	if st.Offsite == nil || st.Offsite.LastError != "copy failed" || st.Offsite.ConsecutiveFailures < 3 || st.Offsite.AgeSeconds != -1 {
		t.Errorf("off-site status = %+v", st.Offsite)
	}
	if st.Local.LastSuccess.IsZero() || st.Local.LastError != "" {
		t.Errorf("local status = %+v", st.Local)
	}
}

func TestFailedCopyIsRetriedWithoutABackup(t *testing.T) {
	rec := &recorder{fail: func(job string, n int) bool { return job == "copy" && n <= 2 }}
	s, err := New(Config{Interval: time.Hour, Retry: time.Millisecond, RunBackup: rec.job("backup", 1), RunCopy: rec.job("copy", 7)})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	waitFor(t, "a good copy", func() bool { return !s.Status().Offsite.LastSuccess.IsZero() })
	if got := rec.snapshot(); !slices.Equal(got, []string{"backup", "copy", "copy", "copy"}) {
		t.Errorf("calls = %v, want one backup and a copy retried twice", got)
	}
	if off := s.Status().Offsite; off.Bytes != 7 || off.LastError != "" {
		t.Errorf("off-site status = %+v", off)
	}
}

func TestStatusAndMetricsAgeFollowTheClock(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := New(Config{
		Interval: time.Hour, RunBackup: (&recorder{}).job("backup", 0), RunCopy: (&recorder{}).job("copy", 0),
		LastLocal: now.Add(-30 * time.Minute), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if st.Local.AgeSeconds != 1800 || st.Offsite == nil || st.Offsite.AgeSeconds != -1 || st.IntervalSeconds != 3600 {
		t.Errorf("status = %+v, offsite %+v", st, st.Offsite)
	}
	if got := metricValue(t, reg, "bulwark_backup_age_seconds", map[string]string{"target": "local"}); got != 1800 {
		t.Errorf("local age = %v, want 1800", got)
	}
	if got := metricValue(t, reg, "bulwark_backup_age_seconds", map[string]string{"target": "offsite"}); !math.IsInf(got, 1) {
		t.Errorf("off-site age before any copy = %v, want +Inf", got)
	}
	if got := metricValue(t, reg, "bulwark_backup_last_success_timestamp_seconds", map[string]string{"target": "local"}); got != float64(now.Add(-30*time.Minute).Unix()) {
		t.Errorf("last success timestamp = %v", got)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no interval": {RunBackup: (&recorder{}).job("backup", 0)},
		"no backup":   {Interval: time.Minute},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	s, err := New(Config{Interval: time.Hour, RunBackup: (&recorder{}).job("backup", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Retry != DefaultRetryLimit || s.Status().Offsite != nil {
		t.Errorf("defaults: retry %v, off-site %+v", s.cfg.Retry, s.Status().Offsite)
	}
}

func TestRecentBackupIsNotTakenAgainAtStart(t *testing.T) {
	rec := &recorder{}
	s, err := New(Config{
		Interval: time.Hour, RunBackup: rec.job("backup", 1), RunCopy: rec.job("copy", 1),
		LastLocal: time.Now().Add(-time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	// The copy owed at start runs at once; the backup only when the
	// newest snapshot is an interval old.
	waitFor(t, "the copy at start", func() bool { return !s.Status().Offsite.LastSuccess.IsZero() })
	if got := rec.snapshot(); !slices.Equal(got, []string{"copy"}) {
		t.Errorf("calls = %v, want only the copy", got)
	}
	if age := s.Status().Local.AgeSeconds; age < 60 {
		t.Errorf("local age = %v, want the minute since the last snapshot", age)
	}
}
