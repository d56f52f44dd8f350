package drill

import (
	"encoding/json"
	"fmt"
	"time"
)

// Scenario is what a drill runs: the site it needs, the load it sends,
// the phases in order and the objectives the result is judged against.
type Scenario struct {
	Name        string     `yaml:"name" json:"name"`
	Description string     `yaml:"description" json:"description,omitempty"`
	Site        SiteSpec   `yaml:"site" json:"site"`
	Load        LoadSpec   `yaml:"load" json:"load"`
	Objectives  Objectives `yaml:"objectives" json:"objectives"`
	Phases      []Phase    `yaml:"phases" json:"phases"`
}

// SiteSpec shapes the scratch site a drill creates (--scratch); a drill on
// a running site takes the site as it is.
type SiteSpec struct {
	// Replicas of the deployment (default 3).
	Replicas int `yaml:"replicas" json:"replicas"`
	// BackupInterval of the site's backup schedule (default 30s).
	BackupInterval Duration `yaml:"backupInterval" json:"backupInterval"`
}

// LoadSpec is the steady load sent through the gateway for the whole
// drill: Rate inference requests per second, each with one of the probe
// inputs, to Model (default: the site's first deployment).
type LoadSpec struct {
	Rate    int      `yaml:"rate" json:"rate"`                 // default 50
	Model   string   `yaml:"model" json:"model,omitempty"`     // default: the first deployment's model
	Timeout Duration `yaml:"timeout" json:"timeout"`           // per request, default 5s
	Workers int      `yaml:"workers" json:"workers,omitempty"` // vegeta's initial workers, default 16
}

// Objectives are what the drill must show; an unset one is not judged.
type Objectives struct {
	// RTO: disaster → first good inference of the recovered site.
	RTO Duration `yaml:"rto" json:"rto,omitempty"`
	// RTOFull: disaster → the recovered site serves with every replica.
	RTOFull Duration `yaml:"rtoFull" json:"rtoFull,omitempty"`
	// RPO: age of the restored backup at the disaster.
	RPO Duration `yaml:"rpo" json:"rpo,omitempty"`
	// MaxFailedRequests is the most requests that may fail, in total, in
	// the phases marked masked; nil is not judged.
	MaxFailedRequests *int `yaml:"maxFailedRequests" json:"maxFailedRequests,omitempty"`
}

// Phase is one step of a scenario. A phase with a fault injects it at its
// start and clears it at its end (a killed process is left to the
// supervisor); Duration is how long the phase runs under load. Masked
// says every fault of the phase must be hidden from clients: its failed
// requests count against Objectives.MaxFailedRequests.
type Phase struct {
	Name     string   `yaml:"name" json:"name"`
	Duration Duration `yaml:"duration" json:"duration"`
	Masked   bool     `yaml:"masked" json:"masked,omitempty"`
	Fault    *Fault   `yaml:"fault" json:"fault,omitempty"`
}

// Fault types a phase may inject.
const (
	// FaultReplicaKill sends SIGKILL to replicas; the controller restarts them.
	FaultReplicaKill = "replica-kill"
	// FaultReplicaStop sends SIGSTOP to replicas and SIGCONT after Pause
	// (default: at the phase's end).
	FaultReplicaStop = "replica-stop"
	// FaultReplicaSlow delays a share (Rate) of the replicas' answers by Latency.
	FaultReplicaSlow = "replica-slow"
	// FaultReplicaWrong corrupts a share of the replicas' answers; Vote
	// turns voting on for the model during the phase.
	FaultReplicaWrong = "replica-wrong"
	// FaultReplicaError answers a share of requests with Status (500).
	FaultReplicaError = "replica-error"
	// FaultControllerKill sends SIGKILL to the controller; its supervisor
	// restarts it and it adopts the running replicas.
	FaultControllerKill = "controller-kill"
	// FaultBadRollout pushes a model version that fails every request of
	// batch 1 and rolls it out; the controller must roll it back.
	FaultBadRollout = "bad-rollout"
	// FaultDisaster destroys the whole site (every process SIGKILLed, its
	// directory removed), restores the latest backup into a new site,
	// starts it and waits for full capacity; the rest of the phase runs
	// on the recovered site, then its answers and state are verified.
	FaultDisaster = "disaster"
)

// Fault is what a phase injects. Fields apply to the types that name them.
type Fault struct {
	Type string `yaml:"type" json:"type"`
	// Replicas: how many replicas the fault hits (default 1; never all of
	// them for a masked phase).
	Replicas int `yaml:"replicas" json:"replicas,omitempty"`
	// Rate: share of requests hit (slow, wrong, error; default 1).
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
	// Latency added by replica-slow (default 2s).
	Latency Duration `yaml:"latency" json:"latency,omitempty"`
	// Status answered by replica-error (default 500).
	Status int `yaml:"status" json:"status,omitempty"`
	// Vote turns the gateway's voting on for the phase (replica-wrong).
	Vote bool `yaml:"vote" json:"vote,omitempty"`
	// Pause: SIGCONT this long after SIGSTOP (replica-stop; default: at
	// the phase's end).
	Pause Duration `yaml:"pause" json:"pause,omitempty"`
}

// Duration is a time.Duration written "30s" in YAML and JSON.
type Duration time.Duration

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string such as "500ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
