package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/supervisor"
)

// localReplica is a `bulwark node` process that `up` runs and supervises.
type localReplica struct {
	name string
	addr string // http://127.0.0.1:PORT
	zone string
	proc *supervisor.Proc
}

// replicaZones spreads local replicas over pretend zones so the gateway's
// zone handling is visible on one machine.
var replicaZones = []string{"a", "b", "c"}

// startReplicas launches n node processes serving the site, each on its own
// loopback port, each its own process so that one can die alone. The
// supervisor restarts a replica that dies, on the same port.
func startReplicas(ctx context.Context, g *globals, n int, chaos bool, token string) ([]*localReplica, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var reps []*localReplica
	for i := 1; i <= n; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		name := "node-" + strconv.Itoa(i)
		args := []string{"node", "--site", g.site, "--listen", "127.0.0.1:" + strconv.Itoa(port),
			"--name", name, "--log-level", g.logLevel, "--log-format", g.logFormat}
		var env []string
		if chaos {
			args = append(args, "--chaos")
			env = append(env, "BULWARK_ADMIN_TOKEN="+token)
		}
		proc, err := supervisor.Start(ctx, supervisor.Spec{Name: name, Path: exe, Args: args, Env: env, Stderr: os.Stderr},
			supervisor.Options{Logger: g.log})
		if err != nil {
			stopReplicas(reps)
			return nil, err
		}
		reps = append(reps, &localReplica{name: name, addr: "http://127.0.0.1:" + strconv.Itoa(port), zone: replicaZones[(i-1)%len(replicaZones)], proc: proc})
	}
	for _, r := range reps {
		if err := waitNodeReady(ctx, r); err != nil {
			stopReplicas(reps)
			return nil, err
		}
	}
	return reps, nil
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the node binds it; the node would then fail to start
// and the supervisor would report it.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitNodeReady(ctx context.Context, r *localReplica) error {
	c := oip.NewClient(r.addr, nil)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ready(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			st := r.proc.Status()
			return fmt.Errorf("replica %s (%s) not ready after 2m: %v (process %s, last exit %q)", r.name, r.addr, err, st.State, st.LastExit)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.proc.Done():
			return errors.New("replica " + r.name + " stopped")
		}
	}
}

func stopReplicas(reps []*localReplica) {
	for _, r := range reps {
		r.proc.Stop()
	}
}
