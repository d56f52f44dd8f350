package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-ml/bulwark/internal/backend/local"
	"github.com/bulwark-ml/bulwark/internal/repository"
)

// Backup end-to-end tests: the real binary against a real site and a
// local repository, as a user runs it.

const backupPassword = "correct horse battery staple"

// backupEnv is a site with the sample model and a repository for it.
type backupEnv struct {
	t    *testing.T
	dir  string
	site string
	repo string
	env  []string // added to every command's environment
}

func newBackupEnv(t *testing.T) *backupEnv {
	t.Helper()
	dir := t.TempDir()
	e := &backupEnv{t: t, dir: dir, site: filepath.Join(dir, "site"), repo: filepath.Join(dir, "repo")}
	e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword}
	model := filepath.Join(dir, "iris.onnx")
	if _, stderr, code := run(t, e.site, "sample", "-o", model); code != 0 {
		t.Fatalf("sample: %s", stderr)
	}
	if _, stderr, code := run(t, e.site, "model", "push", "iris", model); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	e.write("admin-token", []byte("site-token\n"))
	e.write("config/gateway.yaml", []byte("listen: 127.0.0.1:8000\n"))
	e.write("data/weights.bin", randomData(1, 6<<20))
	e.write("logs/replicas/iris-0.log", []byte("a log line\n"))
	e.initRepo()
	return e
}

// initRepo creates the repository in the test process with a cheap key
// derivation (its parameters are in the key file, so every command that
// opens the repository is fast too); TestBackupRestoreRoundTrip runs repo
// init itself.
func (e *backupEnv) initRepo() {
	e.t.Helper()
	be, err := local.Create(e.repo)
	if err != nil {
		e.t.Fatal(err)
	}
	defer be.Close()
	opts := repository.Options{KDF: repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}}
	if _, err := repository.InitWithOptions(context.Background(), be, backupPassword, opts); err != nil {
		e.t.Fatal(err)
	}
}

// randomData is deterministic and incompressible.
func randomData(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func (e *backupEnv) write(rel string, data []byte) {
	e.t.Helper()
	p := filepath.Join(e.site, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// command builds a bulwark command on the env's site and repository.
func (e *backupEnv) command(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"--site", e.site}, args...)...)
	cmd.Env = append(append(os.Environ(), e.env...), extraEnv...)
	return cmd
}

// runWith runs a command to completion with extra environment variables.
func (e *backupEnv) runWith(extraEnv []string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func (e *backupEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	return e.runWith(nil, args...)
}

func (e *backupEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, stderr, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("bulwark %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return out
}

// backup runs bulwark backup --json and returns the snapshot.
func (e *backupEnv) backup(args ...string) snapshotView {
	e.t.Helper()
	var v snapshotView
	out := e.mustRun(append([]string{"--json", "backup"}, args...)...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("backup output %q: %v", out, err)
	}
	return v
}

func (e *backupEnv) snapshots() []snapshotView {
	e.t.Helper()
	var vs []snapshotView
	if err := json.Unmarshal([]byte(e.mustRun("--json", "snapshots")), &vs); err != nil {
		e.t.Fatal(err)
	}
	return vs
}

// openRepo opens the repository in the test process, as a second client.
func (e *backupEnv) openRepo() *repository.Repository {
	e.t.Helper()
	be, err := local.Open(e.repo)
	if err != nil {
		e.t.Fatal(err)
	}
	repo, err := repository.Open(context.Background(), be, backupPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	return repo
}

// siteFiles hashes the files a backup of dir should hold: everything but
// logs and the state directory (whose file is a consistent copy, not the
// same bytes).
func siteFiles(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "logs" || rel == "state" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, got, want map[string][32]byte) {
	t.Helper()
	for rel, sum := range want {
		if g, ok := got[rel]; !ok {
			t.Errorf("%s missing", rel)
		} else if g != sum {
			t.Errorf("%s differs", rel)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s should not be there", rel)
		}
	}
}

// TestBackupRestoreRoundTrip: backup, restore byte-identical, an
// incremental backup that adds nothing, diff, a new model version.
// TestRepoInit: repo init creates a repository the other commands open,
// and refuses to create one over it.
func TestRepoInit(t *testing.T) {
	e := newBackupEnv(t)
	e.repo = filepath.Join(e.dir, "repo-cli")
	e.env = []string{"BULWARK_REPOSITORY=" + e.repo, "BULWARK_PASSWORD=" + backupPassword}
	var created struct {
		ID       string `json:"id"`
		Location string `json:"location"`
		Version  int    `json:"version"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("--json", "repo", "init")), &created); err != nil || len(created.ID) != 64 || created.Version != repository.FormatVersion {
		t.Fatalf("repo init: %+v, %v", created, err)
	}
	if vs := e.snapshots(); len(vs) != 0 {
		t.Fatalf("a new repository has snapshots: %+v", vs)
	}
	if _, stderr, code := e.run("repo", "init"); code != exitExists {
		t.Fatalf("init over a repository: exit %d, %s", code, stderr)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	e := newBackupEnv(t)
	first := e.backup("--cold", "--tag", "first")
	if first.Kind != "cold" || first.Summary == nil || first.Summary.Files < 5 || first.Summary.NewBytes < 6<<20 || first.Parent != "" {
		t.Fatalf("first backup %+v", first)
	}
	target := filepath.Join(e.dir, "restored")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, siteFiles(t, target), siteFiles(t, e.site))
	if _, err := os.Stat(filepath.Join(target, "state")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a site without a controller state restored a state directory: %v", err)
	}

	second := e.backup()
	if second.Kind != "cold" || second.Parent != first.ID || second.Summary.NewBytes != 0 || second.Summary.Bytes != first.Summary.Bytes {
		t.Fatalf("second backup %+v (first %s)", second, first.ID)
	}
	var d snapshotDiff
	if err := json.Unmarshal([]byte(e.mustRun("--json", "diff", first.ShortID, "latest")), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Models) != 0 {
		t.Fatalf("diff of identical snapshots: %+v", d)
	}

	model := filepath.Join(e.dir, "iris.onnx")
	run(t, e.site, "model", "push", "iris", model)
	e.write("data/weights.bin", randomData(2, 6<<20))
	third := e.backup()
	if third.Parent != second.ID || third.Meta["model.iris"] != "1,2" || third.Summary.NewBytes < 6<<20 {
		t.Fatalf("third backup %+v", third)
	}
	text := e.mustRun("diff", first.ID, third.ShortID)
	for _, want := range []string{"+ models/iris/2/model.onnx", "M data/weights.bin", "~ iris: 1 -> 1,2", "files: 3 added"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff does not say %q:\n%s", want, text)
		}
	}
	// The first snapshot still restores on its own.
	old := filepath.Join(e.dir, "old")
	e.mustRun("restore", first.ShortID, "--target", old, "--include", "data")
	if b, _ := os.ReadFile(filepath.Join(old, "data", "weights.bin")); !bytes.Equal(b, randomData(1, 6<<20)) {
		t.Fatal("the first snapshot's weights did not come back")
	}
	if _, err := os.Stat(filepath.Join(old, "admin-token")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("--include data restored more than data")
	}
	if vs := e.snapshots(); len(vs) != 3 || vs[0].ID != first.ID || vs[0].Tags[0] != "first" {
		t.Fatalf("snapshots %+v", vs)
	}
}

// TestBackupRepositoryErrors: each mistake has its own message and exit
// code, and changes nothing.
func TestBackupRepositoryErrors(t *testing.T) {
	e := newBackupEnv(t)
	e.backup()
	_, stderr, code := e.runWith([]string{"BULWARK_PASSWORD=wrong"}, "snapshots")
	if code != exitWrongPassword || !strings.Contains(stderr, "wrong password") {
		t.Fatalf("wrong password: exit %d, %s", code, stderr)
	}
	pwFile := filepath.Join(e.dir, "pw")
	os.WriteFile(pwFile, []byte(backupPassword+"\n"), 0o600)
	if _, stderr, code := e.runWith([]string{"BULWARK_PASSWORD=", "BULWARK_PASSWORD_FILE=" + pwFile}, "snapshots"); code != 0 {
		t.Fatalf("password file with a newline: exit %d, %s", code, stderr)
	}
	cmd := e.command([]string{"BULWARK_PASSWORD="}, "snapshots")
	cmd.Stdin = strings.NewReader(backupPassword + "\n") // not a terminal: no prompt
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); exitOf(err) != exitUsage || !strings.Contains(errb.String(), "no terminal") {
		t.Fatalf("no password and no terminal: %v, %s", err, errb.String())
	}
	if _, stderr, code := e.runWith([]string{"BULWARK_REPOSITORY=" + filepath.Join(e.dir, "nowhere")}, "snapshots"); code != exitNotFound || !strings.Contains(stderr, "repo init") {
		t.Fatalf("missing repository: exit %d, %s", code, stderr)
	}
	if _, stderr, code := e.run("restore", "0000", "--target", filepath.Join(e.dir, "x")); code != exitNotFound {
		t.Fatalf("unknown snapshot: exit %d, %s", code, stderr)
	}

	// A repository written by a newer bulwark is refused before anything
	// is decrypted.
	config := filepath.Join(e.repo, "config")
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	b[4] = 99
	os.WriteFile(config, b, 0o600)
	_, stderr, code = e.run("snapshots")
	if code != exitInvalid || !strings.Contains(stderr, "format version 99") {
		t.Fatalf("unknown format version: exit %d, %s", code, stderr)
	}
}

func exitOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestRestoreRefusesHostileSnapshot: a snapshot crafted through the
// repository API with a path leaving the target is refused before
// anything is written.
func TestRestoreRefusesHostileSnapshot(t *testing.T) {
	e := newBackupEnv(t)
	repo := e.openRepo()
	ctx := context.Background()
	data := []byte("owned")
	id, _, err := repo.SaveBlob(ctx, repository.DataBlob, data)
	if err != nil {
		t.Fatal(err)
	}
	sum := repository.Hash(data)
	for name, node := range map[string]repository.Node{
		"dot-dot":       {Path: "../outside", Type: "file", Mode: 0o644, Size: int64(len(data)), Hash: &sum, Content: []repository.ID{id}},
		"absolute":      {Path: "/tmp/outside", Type: "file", Mode: 0o644, Size: int64(len(data)), Hash: &sum, Content: []repository.ID{id}},
		"escaping link": {Path: "link", Type: "symlink", Mode: 0o777, Target: "../../../etc"},
	} {
		t.Run(name, func(t *testing.T) {
			treeID, err := saveRawTree(ctx, repo, &repository.Tree{Nodes: []repository.Node{node}})
			if err != nil {
				t.Fatal(err)
			}
			if err := repo.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			snap := &repository.Snapshot{Time: time.Now(), Host: "evil", Kind: "cold", Tree: treeID}
			if _, err := repo.SaveSnapshot(ctx, snap); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(e.dir, "target-"+strings.ReplaceAll(name, " ", "-"))
			_, stderr, code := e.run("restore", snap.ID.String(), "--target", target)
			if code != exitInvalid || !strings.Contains(stderr, "nothing was written") {
				t.Fatalf("hostile snapshot: exit %d, %s", code, stderr)
			}
			if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the target was created: %v", err)
			}
		})
	}
}

// saveRawTree stores a tree blob as SaveTree encodes one, without the
// validation SaveTree may do: what an attacker who can write to the
// repository (and has its key) could store.
func saveRawTree(ctx context.Context, repo *repository.Repository, tree *repository.Tree) (repository.ID, error) {
	b, err := json.Marshal(tree)
	if err != nil {
		return repository.ID{}, err
	}
	id, _, err := repo.SaveBlob(ctx, repository.TreeBlob, b)
	return id, err
}

// TestForgetPolicyAndPrune: an empty policy is refused, a dry run removes
// nothing, the policy keeps what it says, prune frees data and the
// remaining snapshot still restores.
func TestForgetPolicyAndPrune(t *testing.T) {
	e := newBackupEnv(t)
	for i := range 3 {
		e.write("data/weights.bin", randomData(uint64(10+i), 2<<20))
		e.backup()
	}
	if _, stderr, code := e.run("forget"); code != exitUsage || !strings.Contains(stderr, "no policy") {
		t.Fatalf("forget without a policy: exit %d, %s", code, stderr)
	}
	out := e.mustRun("forget", "--keep-last", "1", "--dry-run")
	if !strings.Contains(out, "would remove 2 of 3") || len(e.snapshots()) != 3 {
		t.Fatalf("dry run:\n%s", out)
	}
	var res struct {
		Forget []forgetGroup          `json:"forget"`
		Prune  repository.PruneReport `json:"prune"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("--json", "forget", "--keep-last", "1", "--prune")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Forget) != 1 || res.Forget[0].Removed != 2 || res.Prune.BytesFreed < 4<<20 {
		t.Fatalf("forget --prune: %+v", res)
	}
	left := e.snapshots()
	if len(left) != 1 {
		t.Fatalf("%d snapshots left", len(left))
	}
	e.mustRun("verify", "--read-data")
	target := filepath.Join(e.dir, "restored")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, siteFiles(t, target), siteFiles(t, e.site))
}

// TestKeyCommands: a second key opens the repository; passwd replaces the
// current one; the key in use cannot be removed.
func TestKeyCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("new keys use the real key derivation, about a second per command; skipped with -short")
	}
	e := newBackupEnv(t)
	newPW := []string{"BULWARK_NEW_PASSWORD=second password"}
	e.runWith(newPW, "key", "add")
	var keys []repository.KeyInfo
	json.Unmarshal([]byte(e.mustRun("--json", "key", "list")), &keys)
	if len(keys) != 2 {
		t.Fatalf("keys after add: %+v", keys)
	}
	second := []string{"BULWARK_PASSWORD=second password"}
	if _, stderr, code := e.runWith(second, "snapshots"); code != 0 {
		t.Fatalf("the second key does not open the repository: %s", stderr)
	}
	var current string
	for _, k := range keys {
		if k.Current {
			current = k.ID
		}
	}
	if _, _, code := e.run("key", "remove", current); code == 0 {
		t.Fatal("the key in use was removed")
	}
	if _, stderr, code := e.runWith(append(second, "BULWARK_NEW_PASSWORD=third password"), "key", "passwd"); code != 0 {
		t.Fatalf("passwd: %s", stderr)
	}
	if _, _, code := e.runWith(second, "snapshots"); code != exitWrongPassword {
		t.Fatalf("the old password still works after passwd (exit %d)", code)
	}
	if _, stderr, code := e.runWith([]string{"BULWARK_PASSWORD=third password"}, "key", "remove", current); code != 0 {
		t.Fatalf("remove the first key with the third: %s", stderr)
	}
	if _, _, code := e.run("snapshots"); code != exitWrongPassword {
		t.Fatalf("the removed key still opens the repository (exit %d)", code)
	}
}

// TestRestoreStateOnly is the recovery docs/state.md describes: a damaged
// state file is replaced by the one in the latest backup (the damaged one
// kept beside it), and the controller starts on it with the deployments.
func TestRestoreStateOnly(t *testing.T) {
	e := newBackupEnv(t)
	ctl, base := startServing(t, e.site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false")
	doc := filepath.Join(e.dir, "iris.yaml")
	os.WriteFile(doc, []byte(strings.Replace(e2eDeployment, `    - {version: "1", weight: 90}
    - {version: "2", weight: 10}`, `    - {version: "1"}`, 1)), 0o644)
	if _, stderr, code := run(t, e.site, "apply", "-f", doc, "--controller", base); code != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	// Restoring into a running site is refused.
	if _, stderr, code := e.run("restore", "latest", "--site", e.site, "--state-only"); code != exitLocked || !strings.Contains(stderr, "is running") {
		t.Fatalf("restore into a running site: exit %d, %s", code, stderr)
	}
	ctl.Process.Signal(syscall.SIGTERM)
	waitExit(t, ctl)
	snap := e.backup("--cold")
	if snap.Meta["state.source"] != "file" || !strings.Contains(snap.Meta["deployment.iris"], "versions=1:100") {
		t.Fatalf("cold snapshot meta %v", snap.Meta)
	}

	statePath := filepath.Join(e.site, "state", "controller.db")
	damaged, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	// Both bbolt meta pages overwritten: always detected, and the
	// controller refuses to start.
	for i := range min(len(damaged), 2*os.Getpagesize()) {
		damaged[i] = 0xa5
	}
	os.WriteFile(statePath, damaged, 0o600)
	t.Cleanup(func() { killSite(e.site) })
	if _, _, code := run(t, e.site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false"); code != exitInvalid {
		t.Fatalf("controller on a damaged state: exit %d", code)
	}
	out, stderr, code := e.run("restore", "latest", "--site", e.site, "--state-only")
	if code != 0 || !strings.Contains(out, "1 files") {
		t.Fatalf("restore --state-only: exit %d\n%s%s", code, out, stderr)
	}
	aside, _ := filepath.Glob(statePath + ".pre-restore-*")
	if len(aside) != 1 {
		t.Fatalf("the replaced state file was not kept: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, damaged) {
		t.Fatal("the kept state file is not the one replaced")
	}
	ctl, base = startServing(t, e.site, "controller", "--listen", "127.0.0.1:0", "--reconcile=false")
	out, stderr, code = run(t, e.site, "get", "deployments", "--controller", base)
	if code != 0 || !strings.Contains(out, "iris") {
		t.Fatalf("deployments after the state restore: exit %d\n%s%s", code, out, stderr)
	}
	ctl.Process.Signal(syscall.SIGTERM)
	waitExit(t, ctl)
}

// TestBackupFlagParsers covers the small parsers of the backup commands'
// flags, and the progress bar's text.
func TestBackupFlagParsers(t *testing.T) {
	// "m" is months, as in restic: 90m is 90 months; 1h30m is a Go duration.
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "1y6m": (365 + 180) * 24 * time.Hour, "36h": 36 * time.Hour,
		"2y5m7d3h": (2*365+5*30+7)*24*time.Hour + 3*time.Hour, "90m": 90 * 30 * 24 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		if got, err := parseWithin(in); err != nil || got != want {
			t.Errorf("parseWithin(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0d", "-3h", "soon", "7x"} {
		if _, err := parseWithin(bad); err == nil {
			t.Errorf("parseWithin(%q) accepted", bad)
		}
	}
	for in, want := range map[string]float64{"10%": 0.1, "2.5%": 0.025, "100%": 1, "0.5": 0.5} {
		if got, err := parseSubset(in); err != nil || got != want {
			t.Errorf("parseSubset(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0%", "101%", "2", "-1%", "half"} {
		if _, err := parseSubset(bad); err == nil {
			t.Errorf("parseSubset(%q) accepted", bad)
		}
	}
	inc := includeFilter([]string{"models/iris/", "/admin-token"})
	for p, want := range map[string]bool{"models/iris": true, "models/iris/1/model.onnx": true, "models/iris2": false, "admin-token": true, "state/controller.db": false} {
		if inc(p) != want {
			t.Errorf("include(%q) = %v", p, !want)
		}
	}
	bar := &progress{phase: "backup", width: 100, bar: true}
	text := bar.barText(progressState{Done: 512 << 20, Total: 1 << 30, Unit: "bytes", FilesDone: 3, FilesTotal: 8}, 100<<20, 5.12)
	for _, want := range []string{"backup [", " 50.0%", "512.0 MiB / 1.0 GiB", "100.0 MiB/s", "ETA 0:05", "3/8 files"} {
		if !strings.Contains(text, want) {
			t.Errorf("bar %q does not say %q", text, want)
		}
	}
	if len(text) > 99 {
		t.Errorf("bar of %d characters on a 100-column terminal", len(text))
	}
}
