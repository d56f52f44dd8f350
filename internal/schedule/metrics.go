package schedule

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the schedule's Prometheus series, labelled by target.
type metrics struct {
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	bytes       *prometheus.GaugeVec
	runs        *prometheus.CounterVec
}

// Register adds the schedule's metrics to reg:
// bulwark_backup_last_success_timestamp_seconds, bulwark_backup_age_seconds
// (the current RPO; +Inf before the first good backup),
// bulwark_backup_last_duration_seconds, bulwark_backup_last_bytes and
// bulwark_backup_runs_total{result}. Call it before Run.
func (s *Scheduler) Register(reg prometheus.Registerer) error {
	m := &metrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_backup_last_success_timestamp_seconds",
			Help: "Unix time of the last good backup (local) or off-site copy.",
		}, []string{"target"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_backup_last_duration_seconds",
			Help: "How long the last good backup or copy took.",
		}, []string{"target"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_backup_last_bytes",
			Help: "Bytes the last good backup read or the last copy sent.",
		}, []string{"target"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backup_runs_total",
			Help: "Scheduled backups and copies, by result (success or failure).",
		}, []string{"target", "result"}),
	}
	collectors := []prometheus.Collector{m.lastSuccess, m.duration, m.bytes, m.runs}
	s.mu.Lock()
	for target, t := range s.targets {
		if !t.LastSuccess.IsZero() {
			m.lastSuccess.WithLabelValues(target).Set(float64(t.LastSuccess.UnixNano()) / 1e9)
		}
		for _, result := range []string{"success", "failure"} {
			m.runs.WithLabelValues(target, result)
		}
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "bulwark_backup_age_seconds",
			Help:        "Seconds since the last good backup or copy: the current recovery point objective.",
			ConstLabels: prometheus.Labels{"target": target},
		}, s.ageFunc(target)))
	}
	s.mu.Unlock()
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.metrics = m
	return nil
}

func (s *Scheduler) ageFunc(target string) func() float64 {
	return func() float64 {
		now := s.cfg.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		last := s.targets[target].LastSuccess
		if last.IsZero() {
			return math.Inf(1)
		}
		return now.Sub(last).Seconds()
	}
}

func (m *metrics) observe(target string, res Result, end time.Time, err error) {
	if err != nil {
		m.runs.WithLabelValues(target, "failure").Inc()
		return
	}
	m.runs.WithLabelValues(target, "success").Inc()
	m.lastSuccess.WithLabelValues(target).Set(float64(end.UnixNano()) / 1e9)
	m.duration.WithLabelValues(target).Set(res.Duration.Seconds())
	m.bytes.WithLabelValues(target).Set(float64(res.Bytes))
}
