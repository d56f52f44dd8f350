package modelstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeInspector(ctx context.Context, path string) (string, []IOSpec, []IOSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, nil, err
	}
	if !strings.HasPrefix(string(b), "GOOD") {
		return "", nil, nil, errors.New("not a model")
	}
	return "onnx", []IOSpec{{Name: "x", Datatype: "FP32", Shape: []int{-1, 4}}}, []IOSpec{{Name: "y", Datatype: "FP32", Shape: []int{-1, 3}}}, nil
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushListVerify(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m1, err := s.Push(ctx, "iris", writeTemp(t, "GOOD v1"), fakeInspector, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Version != "1" || m1.Format != "onnx" || len(m1.Files) != 1 || m1.Files[0].Size != 7 {
		t.Fatalf("manifest %+v", m1)
	}
	m2, err := s.Push(ctx, "iris", writeTemp(t, "GOOD v2"), fakeInspector, PushOptions{})
	if err != nil || m2.Version != "2" {
		t.Fatalf("second push: %v %+v", err, m2)
	}
	if _, err := s.Push(ctx, "iris", writeTemp(t, "GOOD"), fakeInspector, PushOptions{Version: "10"}); err != nil {
		t.Fatal(err)
	}
	vs, err := s.Versions("iris")
	if err != nil || strings.Join(vs, ",") != "1,2,10" {
		t.Fatalf("versions %v %v", vs, err)
	}
	if latest, _ := s.Latest("iris"); latest != "10" {
		t.Fatalf("latest %s", latest)
	}
	got, err := s.Verify("iris", "2")
	if err != nil || got.Files[0].SHA256 != m2.Files[0].SHA256 {
		t.Fatalf("verify: %v", err)
	}
	names, _ := s.Names()
	if len(names) != 1 || names[0] != "iris" {
		t.Fatalf("names %v", names)
	}
}

func TestVersionsAreImmutable(t *testing.T) {
	s, _ := Open(t.TempDir())
	ctx := context.Background()
	if _, err := s.Push(ctx, "m", writeTemp(t, "GOOD a"), fakeInspector, PushOptions{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Push(ctx, "m", writeTemp(t, "GOOD b"), fakeInspector, PushOptions{Version: "v1"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	m, err := s.Verify("m", "v1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.Path(m, m.Primary))
	if string(b) != "GOOD a" {
		t.Fatalf("content changed to %q", b)
	}
}

func TestInvalidPushWritesNothing(t *testing.T) {
	s, _ := Open(t.TempDir())
	_, err := s.Push(context.Background(), "m", writeTemp(t, "garbage"), fakeInspector, PushOptions{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a model") {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Versions("m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("versions after failed push: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), "m"))
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestCorruptionDetected(t *testing.T) {
	s, _ := Open(t.TempDir())
	m, err := s.Push(context.Background(), "m", writeTemp(t, "GOOD model bytes"), fakeInspector, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Path(m, m.Primary)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("GOOD model bytez"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("m", "1"); !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "m", "1", manifestFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("m", "1"); err == nil || !strings.Contains(err.Error(), "parse manifest") {
		t.Fatalf("corrupt manifest: %v", err)
	}
}

func TestInterruptedPushIsCleanedUp(t *testing.T) {
	site := t.TempDir()
	s, _ := Open(site)
	// A push killed mid-way leaves a staging directory owned by a dead pid.
	dead := filepath.Join(s.Dir(), "m", stagingMark+"999999999-abc")
	if err := os.MkdirAll(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dead, "model.onnx"), []byte("GOOD half"), 0o644)
	if _, err := s.Versions("m"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("staging dir listed as a version: %v", err)
	}
	if _, err := Open(site); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging dir not removed: %v", err)
	}
}

func TestHostileNamesRejected(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, name := range []string{"../x", "a/b", "", ".hidden", "x\x00", strings.Repeat("a", 200)} {
		if _, err := s.Push(context.Background(), name, writeTemp(t, "GOOD"), fakeInspector, PushOptions{}); err == nil {
			t.Errorf("name %q accepted", name)
		}
		if _, err := s.Manifest("m", name); err == nil {
			t.Errorf("version %q accepted", name)
		}
	}
}
