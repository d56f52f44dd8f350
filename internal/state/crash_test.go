package state

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashChildEnv switches the test binary into the writer that
// TestBoltCrashConsistency kills; its value is the state file's path.
const crashChildEnv = "BULWARK_STATE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		os.Exit(3) // crashChild only returns on failure
	}
	os.Exit(m.Run())
}

const crashKeep = 3

// crashPayload is version n of the record: the version, random filler of a
// random length (so pages and overflow chains vary) and a SHA-256 of both,
// so a torn or mixed value cannot pass for a complete one.
func crashPayload(n int64) []byte {
	size := 4<<10 + rand.IntN(124<<10)
	p := make([]byte, 8+size, 8+size+sha256.Size)
	binary.BigEndian.PutUint64(p, uint64(n))
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	rand.NewChaCha8(seed).Read(p[8:])
	sum := sha256.Sum256(p)
	return append(p, sum[:]...)
}

func checkPayload(p []byte) (int64, error) {
	if len(p) < 8+sha256.Size {
		return 0, fmt.Errorf("payload of %d bytes", len(p))
	}
	body := p[:len(p)-sha256.Size]
	if sum := sha256.Sum256(body); string(sum[:]) != string(p[len(body):]) {
		return 0, errors.New("payload hash mismatch: torn or mixed write")
	}
	return int64(binary.BigEndian.Uint64(p)), nil
}

// crashChild applies new versions of one record until it is killed,
// printing "applied N" after each Apply has returned (so is durable).
func crashChild(path string) {
	ctx := context.Background()
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	var rv int64
	if r, err := s.Get(ctx, "crash"); err == nil {
		rv = r.ResourceVersion
	} else if !errors.Is(err, ErrNotFound) {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Printf("applied %d\n", rv)
	for {
		n := rv + 1
		p := crashPayload(n)
		r, err := s.Apply(ctx, Change{
			Record: Record{Name: "crash", Revision: n, Data: p}, Expect: rv,
			Revision: &Revision{Number: n, Data: p}, KeepRevisions: crashKeep,
			Events: []Event{{Reason: "Applied", Message: strconv.FormatInt(n, 10)}},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		rv = r.ResourceVersion
		fmt.Printf("applied %d\n", rv)
	}
}

// TestBoltCrashConsistency kills a writing process at varying points, then
// checks the file opens (every checksum and page verified) with one
// complete version of the record, at least as new as the last Apply the
// child saw return, and revisions and events that agree with it.
func TestBoltCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	var durable int64 // the newest version an Apply returned for
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Progress drives the kill: wait for a random number of further
		// applies, then kill after a random jitter, so the kill lands in
		// different phases of a commit round after round.
		target := durable + int64(rand.IntN(5))
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			n, err := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "applied "), 10, 64)
			if err != nil {
				t.Fatalf("child said %q", lines.Text())
			}
			durable = n
			if n >= target {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		for lines.Scan() { // what the child reported before it died
			if n, err := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "applied "), 10, 64); err == nil {
				durable = n
			}
		}
		if err := cmd.Wait(); err == nil || stderr.Len() > 0 {
			t.Fatalf("round %d: child ended with %v: %s", round, err, stderr.String())
		}
		before := durable
		durable = verifyCrashState(t, path, durable)
		t.Logf("round %d: killed after version %d; the file holds version %d", round, before, durable)
	}
}

func verifyCrashState(t *testing.T, path string, durable int64) int64 {
	t.Helper()
	ctx := context.Background()
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("after kill: %v", err)
	}
	defer s.Close()
	r, err := s.Get(ctx, "crash")
	if errors.Is(err, ErrNotFound) && durable == 0 {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkPayload(r.Data)
	if err != nil || v != r.ResourceVersion || r.Revision != v {
		t.Fatalf("record at resource version %d, revision %d holds version %d: %v", r.ResourceVersion, r.Revision, v, err)
	}
	if v != durable && v != durable+1 {
		t.Fatalf("record at version %d, but the child saw version %d committed", v, durable)
	}
	revs, err := s.Revisions(ctx, "crash")
	if err != nil || int64(len(revs)) != min(v, crashKeep) || revs[len(revs)-1].Number != v {
		t.Fatalf("%d revisions ending at %d for version %d: %v", len(revs), revs[len(revs)-1].Number, v, err)
	}
	for _, rev := range revs {
		if n, err := checkPayload(rev.Data); err != nil || n != rev.Number {
			t.Fatalf("revision %d holds version %d: %v", rev.Number, n, err)
		}
	}
	events, err := s.Events(ctx, "crash", 0)
	if err != nil || int64(len(events)) != v || events[len(events)-1].Message != strconv.FormatInt(v, 10) {
		t.Fatalf("%d events for version %d: %v", len(events), v, err)
	}
	return v
}
