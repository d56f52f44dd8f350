package drill

import "time"

// Report is everything a drill measured; report.json is it as JSON, and
// report.md and report.html are written from it alone.
type Report struct {
	Scenario    string        `json:"scenario"`
	Description string        `json:"description,omitempty"`
	Version     string        `json:"bulwarkVersion"`
	Started     time.Time     `json:"started"`
	Finished    time.Time     `json:"finished"`
	Site        SiteInfo      `json:"site"`
	Load        LoadSpec      `json:"load"`
	Phases      []PhaseResult `json:"phases"`
	// Timeline is the load, one point a second from Started.
	Timeline []Second `json:"timeline"`
	// Events mark the timeline: faults injected and cleared, rollbacks,
	// the disaster, the first good answer and full capacity.
	Events       []Event       `json:"events"`
	Recovery     *Recovery     `json:"recovery,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
	// Plan puts what bulwark plan predicts beside what the drill measured.
	Plan       []PlanRow         `json:"plan,omitempty"`
	Objectives []ObjectiveResult `json:"objectives"`
	// Passed: every objective met and nothing went wrong in the drill itself.
	Passed bool `json:"passed"`
	// Problems the drill ran into (a fault it could not inject, a phase
	// cut short); each fails the drill.
	Problems []string `json:"problems,omitempty"`
}

// SiteInfo says what the drill ran on.
type SiteInfo struct {
	Dir          string `json:"dir"`
	Scratch      bool   `json:"scratch"`
	Gateway      string `json:"gateway"`
	Controller   string `json:"controller"`
	Replicas     int    `json:"replicas"`
	Model        string `json:"model"`
	Repository   string `json:"repository,omitempty"`
	Offsite      string `json:"offsite,omitempty"`
	RecoveredDir string `json:"recoveredDir,omitempty"`
}

// PhaseResult is what clients saw during one phase.
type PhaseResult struct {
	Name   string    `json:"name"`
	Fault  string    `json:"fault,omitempty"` // a fault type, "" for none
	Masked bool      `json:"masked"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Sent   int64     `json:"sent"`
	// Failed counts answers that were not 200 with the right prediction:
	// errors, timeouts and wrong answers.
	Failed int64 `json:"failed"`
	// Wrong counts 200 answers whose prediction was not the expected one
	// (included in Failed).
	Wrong int64 `json:"wrong"`
	// Errors counts failures by kind: an HTTP status ("503"), "timeout",
	// "connection" or "wrong".
	Errors map[string]int64 `json:"errors,omitempty"`
	// Latencies of the answered requests, in milliseconds.
	P50  float64 `json:"p50Ms"`
	P99  float64 `json:"p99Ms"`
	P999 float64 `json:"p999Ms"`
	Max  float64 `json:"maxMs"`
	// Notes: what the phase did and saw, in words (pids killed, the
	// rollback's reason, ...).
	Notes []string `json:"notes,omitempty"`
}

// Second is one second of the timeline.
type Second struct {
	At       float64 `json:"t"` // seconds from Report.Started
	Requests int64   `json:"requests"`
	Failed   int64   `json:"failed"`
	P99      float64 `json:"p99Ms"` // of the answered requests; 0 when none
}

// Event is one moment marked on the timeline.
type Event struct {
	At      float64 `json:"t"` // seconds from Report.Started
	Phase   string  `json:"phase"`
	Kind    string  `json:"kind"` // fault, clear, rollback, disaster, restored, first-good, full-capacity, ...
	Message string  `json:"message"`
}

// Recovery is the measured disaster recovery.
type Recovery struct {
	Repository string    `json:"repository"` // the one restored from (the off-site when configured)
	Snapshot   string    `json:"snapshot"`
	SnapshotAt time.Time `json:"snapshotTime"`
	DisasterAt time.Time `json:"disasterTime"`
	// RestoredAt: the snapshot is on disk; StartedAt: the new site runs;
	// FirstGoodAt: its first right answer; FullCapacityAt: every replica
	// serves.
	RestoredAt     time.Time `json:"restoredTime"`
	FirstGoodAt    time.Time `json:"firstGoodTime"`
	FullCapacityAt time.Time `json:"fullCapacityTime"`
	RestoreBytes   int64     `json:"restoreBytes"`
	// The measured objectives, in seconds.
	RTOFirst float64 `json:"rtoSeconds"`     // disaster → first good inference
	RTOFull  float64 `json:"rtoFullSeconds"` // disaster → full capacity
	RPO      float64 `json:"rpoSeconds"`     // age of the snapshot at the disaster
	// Lost lists the changes made after the snapshot, which the restore
	// could not bring back.
	Lost []LostChange `json:"lost"`
}

// LostChange is one change made after the restored backup.
type LostChange struct {
	At   time.Time `json:"time"`
	Kind string    `json:"kind"` // revision, model-version
	What string    `json:"what"`
}

// Verification compares the recovered site with the lost one.
type Verification struct {
	Probes int `json:"probes"`
	// Identical probes gave the same prediction before and after.
	Identical  int      `json:"identical"`
	Mismatches []string `json:"mismatches,omitempty"`
	// Deployments: the recovered controller's deployments and revisions
	// are those of the snapshot.
	DeploymentsMatch bool     `json:"deploymentsMatch"`
	Deployments      []string `json:"deployments"` // "name rev N (model:version)" as recovered
	Differences      []string `json:"differences,omitempty"`
	Passed           bool     `json:"passed"`
}

// PlanRow is one figure predicted by bulwark plan beside the measurement.
type PlanRow struct {
	Name     string  `json:"name"`
	Planned  float64 `json:"planned"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"` // "s"
	Formula  string  `json:"formula,omitempty"`
}

// ObjectiveResult is one objective judged.
type ObjectiveResult struct {
	Name     string  `json:"name"` // rto, rtoFull, rpo, maxFailedRequests
	Target   float64 `json:"target"`
	Measured float64 `json:"measured"`
	// NotMeasured: the drill never got to measure it (the recovery did not
	// happen or was interrupted); such an objective is not met.
	NotMeasured bool   `json:"notMeasured,omitempty"`
	Unit        string `json:"unit"` // "s" or "requests"
	Met         bool   `json:"met"`
}
