package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// replicaRecord is what the state keeps of a replica, so that the next
// controller can find and adopt it.
type replicaRecord struct {
	Name       string    `json:"name"`
	Deployment string    `json:"deployment"`
	Model      string    `json:"model"`
	Version    string    `json:"version"`
	Index      int       `json:"index"`
	Port       int       `json:"port"`
	Zone       string    `json:"zone,omitempty"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Binary     string    `json:"binary"`
	Stopping   bool      `json:"stopping,omitempty"` // a stop was under way
}

// replica is a replica the reconciler runs. The record and the fields
// above mu belong to the reconciler's goroutine; the prober writes the
// fields below mu.
type replica struct {
	replicaRecord
	proc         process
	out          *os.File // its stdout and stderr; nil if it could not be opened
	adopted      bool
	restarts     int  // the supervisor's count, as last seen
	crashLooping bool // a CrashLoop event was recorded
	quit         chan struct{}
	quitOnce     sync.Once

	mu            sync.Mutex
	ready         bool
	notReadySince time.Time
	reason        string
	scrapeOn      bool
	lastScrape    time.Time
	samples       []metricSample
}

func (rep *replica) address() string { return "http://127.0.0.1:" + strconv.Itoa(rep.Port) }

func (rep *replica) readiness() (bool, string) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.ready, rep.reason
}

func (rep *replica) view() replicaView {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return replicaView{Name: rep.Name, Version: rep.Version, Index: rep.Index, Ready: rep.ready,
		NotReadySince: rep.notReadySince, Reason: rep.reason}
}

// setScrape turns metric sampling on for a version on trial, or off.
func (rep *replica) setScrape(on bool) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.scrapeOn != on {
		rep.scrapeOn, rep.samples, rep.lastScrape = on, nil, time.Time{}
	}
}

func (rep *replica) sampleWindow(now time.Time, window time.Duration) (metricSample, bool) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return windowDelta(rep.samples, now, window)
}

func (rep *replica) stopProbe() { rep.quitOnce.Do(func() { close(rep.quit) }) }

// nodeSpec is the command line of a replica.
func (r *Reconciler) nodeSpec(rec replicaRecord, out *os.File) supervisor.Spec {
	args := []string{"node", "--site", r.opt.Site, "--listen", "127.0.0.1:" + strconv.Itoa(rec.Port),
		"--name", rec.Name, "--model", rec.Model + ":" + rec.Version}
	args = append(args, r.opt.NodeArgs...)
	spec := supervisor.Spec{Name: rec.Name, Path: rec.Binary, Args: args}
	if out != nil {
		spec.Stdout, spec.Stderr = out, out
	}
	return spec
}

// openLog opens a replica's log file, appending; a replica without one
// still runs.
func (r *Reconciler) openLog(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(r.opt.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.log.Warn("replica log", "replica", name, "err", err)
		return nil
	}
	return f
}

// startReplica launches a new replica for slot s of deployment d.
func (r *Reconciler) startReplica(d *Deployment, s slot) (*replica, error) {
	port, err := r.freePort()
	if err != nil {
		return nil, fmt.Errorf("allocate a port: %w", err)
	}
	rec := replicaRecord{Name: fmt.Sprintf("%s-v%s-%d", d.Metadata.Name, s.Version, s.Index+1),
		Deployment: d.Metadata.Name, Model: d.Spec.Model, Version: s.Version, Index: s.Index, Port: port,
		Binary: r.opt.Binary, Zone: zoneOf(&d.Spec, s.Index)}
	if stale := r.replicas[rec.Name]; stale != nil {
		// Only a replica of another model (the spec's model changed) can
		// hold the name of a missing slot: it goes first.
		r.stopReplica(stale)
	}
	return r.launchRecord(rec, false)
}

// launchRecord starts (or, adopt with a pid, adopts) the replica of rec.
func (r *Reconciler) launchRecord(rec replicaRecord, adopt bool) (*replica, error) {
	out := r.openLog(rec.Name)
	spec := r.nodeSpec(rec, out)
	var proc process
	var err error
	if adopt {
		proc, err = r.adoptPID(spec, rec.PID)
	} else {
		proc, err = r.launch(spec)
	}
	if err != nil {
		if out != nil {
			out.Close()
		}
		return nil, err
	}
	st := proc.Status()
	rec.PID, rec.Stopping = st.PID, false
	if !adopt {
		rec.Started = r.now()
	}
	rep := &replica{replicaRecord: rec, proc: proc, out: out, adopted: adopt, quit: make(chan struct{}),
		notReadySince: r.now(), reason: "starting"}
	r.replicas[rec.Name] = rep
	r.dirty = true
	r.wg.Add(1)
	go r.prober(rep)
	return rep, nil
}

// stopReplica takes a replica out of service and stops it in the
// background; the loop hears of the end on r.stopped.
func (r *Reconciler) stopReplica(rep *replica) {
	if r.replicas[rep.Name] == rep {
		delete(r.replicas, rep.Name)
	}
	rep.stopProbe()
	rep.Stopping = true
	r.draining[rep] = true
	r.dirty = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		rep.proc.Stop()
		if rep.out != nil {
			rep.out.Close()
		}
		r.stopped <- rep
	}()
}

func (r *Reconciler) finishStop(rep *replica) {
	delete(r.draining, rep)
	r.dirty = true
}

// prober polls a replica's readiness (and, on trial, its metrics) until
// the replica is stopped or the reconciler ends.
func (r *Reconciler) prober(rep *replica) {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-rep.quit
		cancel()
	}()
	t := time.NewTicker(r.opt.ProbeInterval)
	defer t.Stop()
	failed := 0 // consecutive failed probes of a running process
	for {
		var ok bool
		var reason string
		if st := rep.proc.Status(); st.State != supervisor.Running {
			reason = "process " + string(st.State)
			if st.LastExit != "" {
				reason += " (last exit: " + st.LastExit + ")"
			}
			failed = 0
		} else if ok, reason = r.probe(ctx, rep); ok {
			failed = 0
		} else {
			failed++
		}
		now := r.now()
		rep.mu.Lock()
		if !ok && failed > 0 && failed < r.opt.ProbeFailures && rep.ready {
			// One slow answer on a busy machine is not a dead replica:
			// dropping it from the routing table would cost capacity
			// (and a vote its majority) for nothing.
			ok = true
		}
		changed := ok != rep.ready
		if changed && !ok {
			rep.notReadySince = now
		}
		rep.ready, rep.reason = ok, reason
		scrape := ok && rep.scrapeOn && now.Sub(rep.lastScrape) >= r.opt.ScrapeInterval
		rep.mu.Unlock()
		if changed {
			r.wake()
		}
		if scrape {
			r.scrapeInto(ctx, rep, now)
		}
		select {
		case <-rep.quit:
			return
		case <-t.C:
		}
	}
}

func (r *Reconciler) scrapeInto(ctx context.Context, rep *replica, now time.Time) {
	s, err := r.scrape(ctx, rep)
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.lastScrape = now
	if err != nil {
		return
	}
	if n := len(rep.samples); n > 0 && s.Total < rep.samples[n-1].Total {
		rep.samples = nil // the process restarted: its counters began again
	}
	rep.samples = append(rep.samples, s)
	// Keep an hour at most; windows are shorter.
	for len(rep.samples) > 2 && now.Sub(rep.samples[1].At) > time.Hour {
		rep.samples = rep.samples[1:]
	}
}

// httpProbe asks the replica whether its one model version is ready.
func (r *Reconciler) httpProbe(ctx context.Context, rep *replica) (bool, string) {
	u := rep.address() + "/v2/models/" + url.PathEscape(rep.Model) + "/versions/" + url.PathEscape(rep.Version) + "/ready"
	code, body, err := r.get(ctx, u)
	if err != nil {
		return false, err.Error()
	}
	if code == http.StatusOK {
		return true, ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return false, e.Error
	}
	return false, "HTTP " + strconv.Itoa(code)
}

func (r *Reconciler) httpScrape(ctx context.Context, rep *replica) (metricSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.address()+"/metrics", nil)
	if err != nil {
		return metricSample{}, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return metricSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricSample{}, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseNodeMetrics(io.LimitReader(resp.Body, 16<<20), rep.Model, rep.Version, r.now())
}

// httpIdentify reports whether the node on rec's port says it is rec's
// replica (GET /v2 names it), which makes the pid safe to adopt.
func (r *Reconciler) httpIdentify(ctx context.Context, rec replicaRecord) bool {
	code, body, err := r.get(ctx, "http://127.0.0.1:"+strconv.Itoa(rec.Port)+"/v2")
	if err != nil || code != http.StatusOK {
		return false
	}
	var md struct {
		Name string `json:"name"`
	}
	return json.Unmarshal(body, &md) == nil && md.Name == rec.Name
}

func (r *Reconciler) get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// replicaInfos describes the replicas for the API.
func (r *Reconciler) replicaInfos() []ReplicaInfo {
	var out []ReplicaInfo
	add := func(rep *replica, stopping bool) {
		st := rep.proc.Status()
		ready, reason := rep.readiness()
		out = append(out, ReplicaInfo{Name: rep.Name, Deployment: rep.Deployment, Model: rep.Model, Version: rep.Version,
			Address: rep.address(), Zone: rep.Zone, PID: st.PID, State: string(st.State), Ready: ready && !stopping,
			Reason: reason, Restarts: st.Restarts, Adopted: rep.adopted, Stopping: stopping, Started: rep.Started})
	}
	for _, rep := range r.replicas {
		add(rep, false)
	}
	for rep := range r.draining {
		add(rep, true)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return !out[i].Stopping
	})
	return out
}

// cmdlineNames reports whether pid's command line carries --name name:
// a recorded replica that no longer answers is then known to be ours.
func cmdlineNames(pid int, name string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(b), "\x00--name\x00"+name+"\x00")
}
