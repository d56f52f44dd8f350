package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testToken = "s3cret"

func newTestAPI(t *testing.T) (*Client, *Service, *httptest.Server) {
	t.Helper()
	svc, _, _ := newTestService(t)
	srv := httptest.NewServer(NewAPI(svc, testToken, nil))
	t.Cleanup(srv.Close)
	return NewClient(srv.URL, testToken), svc, srv
}

// post sends a raw request and returns the status and body.
func post(t *testing.T, srv *httptest.Server, path, contentType, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIApplyStatusCodes(t *testing.T) {
	c, _, srv := newTestAPI(t)
	ctx := context.Background()
	code, body := post(t, srv, "/api/v1/apply?dryRun=1", "application/yaml", irisDoc)
	if code != http.StatusOK || !strings.Contains(body, `"dryRun":true`) || !strings.Contains(body, `"result":"created"`) {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if _, err := c.Get(ctx, "iris"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after a dry run: %v", err)
	}
	if code, body := post(t, srv, "/api/v1/apply", "application/yaml", irisDoc); code != http.StatusCreated || !strings.Contains(body, `"result":"created"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := post(t, srv, "/api/v1/apply", "application/yaml; charset=utf-8", irisDoc); code != http.StatusOK || !strings.Contains(body, `"result":"unchanged"`) {
		t.Fatalf("same again: %d %s", code, body)
	}
	code, body = post(t, srv, "/api/v1/apply", "application/yaml", edit(t, irisDoc, "replicas: 3", "replicas: 0"))
	var e struct{ Error string }
	json.Unmarshal([]byte(body), &e)
	if code != http.StatusBadRequest || e.Error != "line 10: spec.replicas: must be at least 1, got 0" {
		t.Fatalf("invalid: %d %s", code, body)
	}
	if code, _ := post(t, srv, "/api/v1/apply", "text/plain", irisDoc); code != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d", code)
	}
	if code, _ := post(t, srv, "/api/v1/apply", "application/yaml", strings.Repeat("#", MaxDocumentBytes+1)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %d", code)
	}
	// JSON, as get prints it, applies with a changed field.
	d, err := c.Get(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = 5
	b, _ := json.Marshal(d)
	res, err := c.Apply(ctx, b, "application/json", false)
	if err != nil || res.Result != Configured || res.Revision != 2 || res.Deployment.Spec.Replicas != 5 {
		t.Fatalf("JSON apply: %+v %v", res, err)
	}
	// The JSON still carries resourceVersion 1: now stale.
	if _, err := c.Apply(ctx, b, "application/json", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("stale JSON apply: %v", err)
	}
}

func TestAPIRequiresToken(t *testing.T) {
	_, svc, srv := newTestAPI(t)
	for _, tok := range []string{"", "wrong"} {
		_, err := NewClient(srv.URL, tok).Apply(context.Background(), []byte(irisDoc), "application/yaml", false)
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("token %q: %v", tok, err)
		}
		if _, err := NewClient(srv.URL, tok).List(context.Background()); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("list with token %q: %v", tok, err)
		}
	}
	if ds, _ := svc.List(context.Background()); len(ds) != 0 {
		t.Fatalf("an unauthorized apply wrote %d deployments", len(ds))
	}
}

func TestAPIDeploymentLifecycle(t *testing.T) {
	c, svc, _ := newTestAPI(t)
	ctx := context.Background()
	if _, err := c.Apply(ctx, []byte(irisDoc), "application/yaml", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, []byte(edit(t, irisDoc, "replicas: 3", "replicas: 2")), "application/yaml", false); err != nil {
		t.Fatal(err)
	}
	ds, err := c.List(ctx)
	if err != nil || len(ds) != 1 || ds[0].Metadata.Revision != 2 || ds[0].Status.Phase != PhasePending {
		t.Fatalf("list: %+v %v", ds, err)
	}
	revs, err := c.Revisions(ctx, "iris")
	if err != nil || len(revs) != 2 || revs[0].Spec.Rollout.MaxP99Latency != Duration(500*time.Millisecond) {
		t.Fatalf("revisions: %+v %v", revs, err)
	}
	res, err := c.Rollback(ctx, "iris", 0)
	if err != nil || res.Result != RolledBack || res.Revision != 3 || res.Deployment.Spec.Replicas != 3 {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if _, err := c.Rollback(ctx, "iris", 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rollback to a missing revision: %v", err)
	}
	evs, err := c.Events(ctx, "iris", 0)
	if err != nil || len(evs) != 3 || evs[2].Reason != "RolledBack" {
		t.Fatalf("events: %+v %v", evs, err)
	}
	svc.SetStatus(ctx, "iris", Status{Phase: PhaseDegraded, ObservedRevision: 3, ReadyReplicas: 4, DesiredReplicas: 6})
	st, err := c.Status(ctx, "iris")
	if err != nil || st.Revision != 3 || st.Status.Phase != PhaseDegraded || st.Status.ReadyReplicas != 4 || st.ResourceVersion != 4 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if err := c.Delete(ctx, "iris", 3); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if err := c.Delete(ctx, "iris", 4); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for _, err := range []error{
		func() error { _, err := c.Get(ctx, "iris"); return err }(),
		func() error { _, err := c.Status(ctx, "iris"); return err }(),
		func() error { _, err := c.Events(ctx, "iris", 0); return err }(),
		func() error { _, err := c.Revisions(ctx, "iris"); return err }(),
		c.Delete(ctx, "iris", 0),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	}
}

func TestAPIBadParameters(t *testing.T) {
	c, _, srv := newTestAPI(t)
	c.Apply(context.Background(), []byte(irisDoc), "application/yaml", false)
	for _, path := range []string{"/api/v1/deployments/iris?resourceVersion=x", "/api/v1/watch?since=-1"} {
		method := http.MethodDelete
		if strings.Contains(path, "watch") {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	if code, _ := post(t, srv, "/api/v1/deployments/iris/rollback", "application/json", `{"to": 1}`); code != http.StatusBadRequest {
		t.Fatalf("rollback with an unknown field: %d", code)
	}
	if code, body := post(t, srv, "/api/v1/nothing", "application/json", ""); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Fatalf("unknown route: %d %s", code, body)
	}
}

func TestAPIWatchLongPoll(t *testing.T) {
	c, _, _ := newTestAPI(t)
	ctx := context.Background()
	gen, err := c.Watch(ctx, 0, 0)
	if err != nil || gen < 1 {
		t.Fatalf("watch since 0: %d %v", gen, err)
	}
	start := time.Now()
	if g, err := c.Watch(ctx, gen, 50*time.Millisecond); err != nil || g != gen || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("watch with no change: %d %v after %v", g, err, time.Since(start))
	}
	got := make(chan int64, 1)
	go func() {
		g, _ := c.Watch(ctx, gen, 10*time.Second)
		got <- g
	}()
	time.Sleep(20 * time.Millisecond)
	c.Apply(ctx, []byte(irisDoc), "application/yaml", false)
	select {
	case g := <-got:
		if g != gen+1 {
			t.Fatalf("watch woke with %d, want %d", g, gen+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch not woken by an apply")
	}
}

func TestClientApplyFileStopsAtFirstError(t *testing.T) {
	c, _, _ := newTestAPI(t)
	ctx := context.Background()
	second := strings.Replace(irisDoc, "name: iris", "name: iris-b", 1)
	bad := edit(t, strings.Replace(irisDoc, "name: iris", "name: iris-c", 1), "replicas: 3", "replicas: 0")
	third := strings.Replace(irisDoc, "name: iris", "name: iris-d", 1)
	file := irisDoc + "---\n" + second + "---\n" + bad + "---\n" + third
	done, err := c.ApplyFile(ctx, []byte(file), false)
	// The bad document starts at its marker, line 32 of the file; replicas is line 42.
	if len(done) != 2 || err == nil || !strings.Contains(err.Error(), "document 3 of 4 (line 32): line 42: spec.replicas") || !errors.Is(err, ErrInvalid) {
		t.Fatalf("applied %d, err %v", len(done), err)
	}
	ds, _ := c.List(ctx)
	if len(ds) != 2 || ds[0].Metadata.Name != "iris" || ds[1].Metadata.Name != "iris-b" {
		t.Fatalf("deployments after a failed file: %d", len(ds))
	}
	var buf bytes.Buffer
	buf.WriteString(irisDoc)
	if done, err := c.ApplyFile(ctx, buf.Bytes(), true); err != nil || len(done) != 1 || !done[0].DryRun || done[0].Result != Unchanged {
		t.Fatalf("dry-run file: %+v %v", done, err)
	}
}
