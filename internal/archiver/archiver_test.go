package archiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/archiver"
	"github.com/bulwark-ml/bulwark/internal/backend/mem"
	"github.com/bulwark-ml/bulwark/internal/control"
	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/repository"
	"github.com/bulwark-ml/bulwark/internal/restorer"
	"github.com/bulwark-ml/bulwark/internal/state"
)

const testToken = "archiver-test-token"

func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	// A cheap key derivation: the default one takes a good part of a
	// second on purpose.
	repo, err := repository.InitWithOptions(context.Background(), mem.New(), "test password",
		repository.Options{KDF: repository.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// randomBytes is incompressible, deterministic data.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func inspect(context.Context, string) (string, []modelstore.IOSpec, []modelstore.IOSpec, error) {
	return "onnx", nil, nil, nil
}

const deployment = `apiVersion: bulwark.dev/v1
kind: Deployment
metadata:
  name: iris
spec:
  model: iris
  versions:
    - {version: "1", weight: 100}
  replicas: 2
`

// newSite makes a site: two model versions, an admin token, a config
// file, a symlink, two symlinks leading out of the site, a log, a gateway's routing cache, a push in progress, a
// temporary file, and a controller state with one deployment (closed: the
// site is stopped).
func newSite(t *testing.T) string {
	t.Helper()
	site := filepath.Join(t.TempDir(), "site")
	store, err := modelstore.Open(site)
	if err != nil {
		t.Fatal(err)
	}
	for v, seed := range []uint64{1, 2} {
		src := filepath.Join(t.TempDir(), "model.onnx")
		writeFile(t, src, randomBytes(seed, 3<<20+v*1000))
		if _, err := store.Push(context.Background(), "iris", src, inspect, modelstore.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(site, "admin-token"), []byte("secret\n"))
	writeFile(t, filepath.Join(site, "config", "gateway.yaml"), []byte("listen: 127.0.0.1:8000\n"))
	if err := os.Symlink("gateway.yaml", filepath.Join(site, "config", "current.yaml")); err != nil {
		t.Fatal(err)
	}
	// Links out of the site cannot be restored safely: left out.
	if err := os.Symlink("/etc/hostname", filepath.Join(site, "config", "host")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../outside", filepath.Join(site, "config", "outside")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(site, "logs", "replicas", "r1.log"), []byte("log line\n"))
	writeFile(t, filepath.Join(site, "gateway", "routing.json"), []byte(`{"generation":7}`))
	writeFile(t, filepath.Join(site, "models", "iris", ".staging-1-abc", "model.onnx"), []byte("half a push"))
	writeFile(t, filepath.Join(site, "config", ".gateway.yaml.tmp-123"), []byte("half a write"))

	st := openState(t, site)
	applyDeployment(t, st, store, deployment)
	st.Close()
	return site
}

func openState(t *testing.T, site string) *state.Bolt {
	t.Helper()
	path := filepath.Join(site, "state", "controller.db")
	os.MkdirAll(filepath.Dir(path), 0o755)
	st, err := state.OpenBolt(path, state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func applyDeployment(t *testing.T, st state.Store, store *modelstore.Store, doc string) *control.Service {
	t.Helper()
	svc, err := control.NewService(context.Background(), st, store, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := control.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Apply(context.Background(), d, 0); err != nil {
		t.Fatal(err)
	}
	return svc
}

// files lists a directory's regular files and symlinks with their content
// hashes (a symlink's target stands for its content).
func files(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out[rel] = sha256.Sum256([]byte("link:" + target))
			return err
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

func restore(t *testing.T, repo *repository.Repository, snap *repository.Snapshot) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := restorer.Restore(context.Background(), repo, snap, restorer.Options{Target: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestColdBackupRestoresTheSite(t *testing.T) {
	ctx := context.Background()
	site := newSite(t)
	repo := newRepo(t)
	var last archiver.Progress
	snap, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold, Host: "h1", Tags: []string{"b", "a"},
		Progress: func(p archiver.Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Kind != "cold" || snap.Host != "h1" || strings.Join(snap.Tags, ",") != "a,b" || snap.Parent != nil {
		t.Fatalf("snapshot %+v", snap)
	}
	meta := snap.Meta
	if meta[archiver.MetaSite] != site || meta[archiver.MetaStateSource] != "file" || meta[archiver.MetaModel+"iris"] != "1,2" ||
		meta[archiver.MetaDeployment+"iris"] != "model=iris versions=1:100 replicas=2 revision=1" || meta[archiver.MetaStateGeneration] == "" {
		t.Fatalf("meta %v", meta)
	}
	if last.FilesDone != last.FilesTotal || last.BytesDone != last.BytesTotal || last.BytesTotal != snap.Summary.Bytes || last.NewBytes == 0 {
		t.Fatalf("final progress %+v, summary %+v", last, snap.Summary)
	}

	got := files(t, restore(t, repo, snap))
	want := files(t, site)
	for rel := range want {
		if strings.HasPrefix(rel, "logs/") || strings.Contains(rel, ".staging-") || strings.Contains(rel, ".tmp-") || strings.HasPrefix(rel, "state/") ||
			rel == "gateway/routing.json" || rel == "config/host" || rel == "config/outside" {
			// The state is a consistent copy, not the file's bytes.
			if _, ok := got[rel]; ok && !strings.HasPrefix(rel, "state/") {
				t.Errorf("%s was backed up", rel)
			}
			delete(want, rel)
		}
	}
	stateFile := filepath.Join("state", "controller.db")
	if _, ok := got[stateFile]; !ok {
		t.Fatal("no state in the snapshot")
	}
	delete(got, stateFile)
	if len(got) != len(want) {
		t.Fatalf("restored %d files, want %d: %v", len(got), len(want), got)
	}
	for rel, sum := range want {
		if got[rel] != sum {
			t.Errorf("%s differs after the round trip", rel)
		}
	}
}

func TestColdBackupRefusesARunningSite(t *testing.T) {
	site := newSite(t)
	openState(t, site) // a controller holds the state
	_, err := archiver.Backup(context.Background(), newRepo(t), archiver.Options{Site: site, Mode: archiver.Cold})
	if !errors.Is(err, archiver.ErrSiteRunning) || !strings.Contains(err.Error(), "--hot") {
		t.Fatalf("cold backup of a running site: %v", err)
	}
	// Auto picks hot, which needs the controller.
	_, err = archiver.Backup(context.Background(), newRepo(t), archiver.Options{Site: site})
	if !errors.Is(err, archiver.ErrNotRunning) {
		t.Fatalf("auto backup of a running site without its controller: %v", err)
	}
}

// TestHotBackupAsksTheController: the state comes from the controller's
// API while it holds the file, and the snapshot is hot.
func TestHotBackupAsksTheController(t *testing.T) {
	ctx := context.Background()
	site := newSite(t)
	// This controller keeps its state outside the site: only its answer
	// tells that the site runs.
	st, err := state.OpenBolt(filepath.Join(t.TempDir(), "elsewhere.db"), state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store, _ := modelstore.Open(site)
	applyDeployment(t, st, store, strings.Replace(deployment, "name: iris", "name: web", 1))
	svc, err := control.NewService(ctx, st, store, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(control.NewAPI(svc, testToken, nil))
	defer srv.Close()
	c := control.NewClient(srv.URL, testToken)
	repo := newRepo(t)
	// Auto: the controller answers, so the backup is hot.
	snap, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Controller: c})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Kind != "hot" || snap.Meta[archiver.MetaStateSource] != "controller" || snap.Meta[archiver.MetaDeployment+"web"] == "" || snap.Meta[archiver.MetaDeployment+"iris"] != "" {
		t.Fatalf("snapshot kind %s meta %v", snap.Kind, snap.Meta)
	}
	// A cold backup is refused because the controller answers.
	_, err = archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold, Controller: c})
	if !errors.Is(err, archiver.ErrSiteRunning) || !strings.Contains(err.Error(), "its controller answers") {
		t.Fatalf("cold backup with a controller answering: %v", err)
	}
	dir := restore(t, repo, snap)
	copied, err := state.OpenBoltReadOnly(filepath.Join(dir, "state", "controller.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	if recs, err := copied.List(ctx); err != nil || len(recs) != 1 || recs[0].Name != "web" {
		t.Fatalf("restored state: %v, %v", recs, err)
	}
}

// TestParentSkipsUnchangedFiles: with a parent, a file whose size, mtime
// and inode are unchanged is taken from the parent without being read
// (so an in-place change that keeps them is not seen, as with restic);
// without one, it is read.
func TestParentSkipsUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	site := newSite(t)
	repo := newRepo(t)
	first, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold})
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(site, "models", "iris", "1", "model.onnx")
	info, _ := os.Stat(model)
	sneaky := randomBytes(99, int(info.Size()))
	f, err := os.OpenFile(model, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(sneaky)
	f.Close()
	os.Chtimes(model, info.ModTime(), info.ModTime())

	second, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold, Parent: first})
	if err != nil {
		t.Fatal(err)
	}
	if second.Parent == nil || *second.Parent != first.ID || second.Summary.NewBlobs != 0 {
		t.Fatalf("second backup: parent %v, %d new blobs", second.Parent, second.Summary.NewBlobs)
	}
	old, _ := os.ReadFile(filepath.Join(restore(t, repo, second), "models", "iris", "1", "model.onnx"))
	if bytes.Equal(old, sneaky) {
		t.Fatal("the unchanged-looking file was read again")
	}
	third, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold})
	if err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(filepath.Join(restore(t, repo, third), "models", "iris", "1", "model.onnx"))
	if !bytes.Equal(now, sneaky) || third.Summary.NewBlobs == 0 {
		t.Fatalf("without a parent the file was not read (%d new blobs)", third.Summary.NewBlobs)
	}
}

// TestSecondBackupStoresNothingNew: the same site backed up again with no
// parent reads everything and stores no new data.
func TestSecondBackupStoresNothingNew(t *testing.T) {
	ctx := context.Background()
	site := newSite(t)
	repo := newRepo(t)
	first, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold})
	if err != nil {
		t.Fatal(err)
	}
	second, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold})
	if err != nil {
		t.Fatal(err)
	}
	if first.Summary.NewBytes < 6<<20 || second.Summary.NewBytes != 0 || second.Summary.Bytes != first.Summary.Bytes {
		t.Fatalf("first %+v, second %+v", first.Summary, second.Summary)
	}
}

func TestBackupOfAMissingSite(t *testing.T) {
	_, err := archiver.Backup(context.Background(), newRepo(t), archiver.Options{Site: filepath.Join(t.TempDir(), "nothing"), Mode: archiver.Cold})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("backup of a missing site: %v", err)
	}
}

// TestParentRereadsAReplacedFile: a file replaced by another of the same
// size and modification time (written next to it and renamed over it, as
// a copy preserving times does) has a new inode, so the next backup reads
// it instead of trusting the parent.
func TestParentRereadsAReplacedFile(t *testing.T) {
	ctx := context.Background()
	site := newSite(t)
	repo := newRepo(t)
	first, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold})
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(site, "models", "iris", "1", "model.onnx")
	info, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	replacement := randomBytes(98, int(info.Size()))
	tmp := model + ".new"
	if err := os.WriteFile(tmp, replacement, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, model); err != nil {
		t.Fatal(err)
	}
	second, err := archiver.Backup(ctx, repo, archiver.Options{Site: site, Mode: archiver.Cold, Parent: first})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(restore(t, repo, second), "models", "iris", "1", "model.onnx"))
	if !bytes.Equal(got, replacement) || second.Summary.NewBlobs == 0 {
		t.Fatalf("the replaced file was not read again (%d new blobs)", second.Summary.NewBlobs)
	}
}
