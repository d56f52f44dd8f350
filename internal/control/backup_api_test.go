package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/state"
)

// newBoltAPI serves a Service over a real bbolt state file.
func newBoltAPI(t *testing.T) (*Client, *Service) {
	t.Helper()
	st, err := state.OpenBolt(filepath.Join(t.TempDir(), "controller.db"), state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := NewService(context.Background(), st, newCatalog(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewAPI(svc, testToken, nil))
	t.Cleanup(srv.Close)
	return NewClient(srv.URL, testToken), svc
}

// openCopy writes a received copy to a file and opens it read-only.
func openCopy(t *testing.T, data []byte) *state.Bolt {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := state.OpenBoltReadOnly(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestBackupStateIsAConsistentCopy(t *testing.T) {
	ctx := context.Background()
	c, svc := newBoltAPI(t)
	if _, err := svc.Apply(ctx, mustParse(t, irisDoc), 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cp, err := c.BackupState(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if cp.Size != int64(buf.Len()) || cp.SHA256 != hex.EncodeToString(sum[:]) || cp.Generation != svc.Generation() {
		t.Fatalf("copy %+v: %d bytes, generation now %d", cp, buf.Len(), svc.Generation())
	}
	got, err := DescribeState(ctx, openCopy(t, buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != cp.Generation || len(got.Deployments) != 1 {
		t.Fatalf("described %+v, copy generation %d", got, cp.Generation)
	}
	d := got.Deployments[0]
	if d.Name != "iris" || d.Model != "iris" || d.Revision != 1 || d.Replicas != 3 || len(d.Versions) != 2 || d.Versions[1] != (VersionWeight{"2", 10}) {
		t.Fatalf("deployment %+v", d)
	}
}

func TestBackupStateWhileApplying(t *testing.T) {
	ctx := context.Background()
	c, svc := newBoltAPI(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			doc := edit(t, irisDoc, "name: iris", "name: web-"+strconv.Itoa(i))
			if _, err := svc.Apply(ctx, mustParse(t, doc), 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Every copy taken meanwhile opens and reads whole: a cut between
	// transactions, never a mix.
	for range 10 {
		var buf bytes.Buffer
		if _, err := c.BackupState(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		got, err := DescribeState(ctx, openCopy(t, buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range got.Deployments {
			if d.Model != "iris" || d.Revision != 1 {
				t.Fatalf("half-written deployment in a copy: %+v", d)
			}
		}
	}
	wg.Wait()
}

func TestBackupStateNeedsTheToken(t *testing.T) {
	c, _ := newBoltAPI(t)
	c.token = "wrong"
	var buf bytes.Buffer
	if _, err := c.BackupState(context.Background(), &buf); !errors.Is(err, ErrUnauthorized) || buf.Len() != 0 {
		t.Fatalf("wrong token: %v, %d bytes", err, buf.Len())
	}
}

// TestBackupStateRefusesABadCopy: a stream cut short, with a wrong
// checksum, or with the controller's error is never taken for a copy.
func TestBackupStateRefusesABadCopy(t *testing.T) {
	body := []byte("not really a state file")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	bad := "0" + good[1:]
	if bad == good {
		bad = "1" + good[1:]
	}
	for name, trailers := range map[string]map[string]string{
		"no trailers":    {},
		"wrong checksum": {StateSHA256Trailer: bad, StateSizeTrailer: strconv.Itoa(len(body))},
		"wrong size":     {StateSHA256Trailer: good, StateSizeTrailer: strconv.Itoa(len(body) + 1)},
		"server error":   {StateErrorTrailer: "disk on fire"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(StateGenerationHeader, "7")
				w.Header().Set("Trailer", StateSHA256Trailer+", "+StateSizeTrailer+", "+StateErrorTrailer)
				w.Write(body)
				for k, v := range trailers {
					w.Header().Set(k, v)
				}
			}))
			defer srv.Close()
			_, err := NewClient(srv.URL, testToken).BackupState(context.Background(), &bytes.Buffer{})
			if !errors.Is(err, ErrIncompleteCopy) {
				t.Fatalf("err = %v, want ErrIncompleteCopy", err)
			}
		})
	}
}

func TestForgetReplicas(t *testing.T) {
	ctx := context.Background()
	st := state.NewMemory()
	if err := st.PutMeta(ctx, replicasKey, []byte(`[{"name":"iris-0","pid":4242,"port":9000}]`)); err != nil {
		t.Fatal(err)
	}
	if err := ForgetReplicas(ctx, st); err != nil {
		t.Fatal(err)
	}
	b, err := st.Meta(ctx, replicasKey)
	if err != nil || string(b) != "[]" {
		t.Fatalf("recorded replicas after ForgetReplicas: %q, %v", b, err)
	}
}
