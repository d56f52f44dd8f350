package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func writeConfig(t *testing.T, path, token string, fakes ...*fakeReplica) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {token: %s}\ndefaults:\n  health: {interval: 10ms}\nmodels:\n  iris:\n    replicas:\n", token)
	for _, f := range fakes {
		fmt.Fprintf(&b, "      - address: %s\n", f.addr)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAdminAPI(t *testing.T) {
	a, b := newFake(t, modeOK), newFake(t, modeOK)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	writeConfig(t, path, "s3cret", a)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Start(ctx)
	srv := newServer(t, g)
	ac := NewAdminClient(srv, "s3cret")

	// Wrong or missing token: 401, and nothing changes.
	for _, tok := range []string{"", "wrong"} {
		_, err := NewAdminClient(srv, tok).Drain(ctx, a.addr)
		if oip.StatusCode(err) != 401 {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	if st := stateOf(g, a); st == StateDraining {
		t.Fatal("unauthorized drain took effect")
	}

	st, err := ac.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Models) != 1 || st.Models[0].Name != "iris" || st.Models[0].Replicas[0].Address != a.addr {
		t.Fatalf("status %+v", st)
	}
	if _, err := ac.Drain(ctx, a.addr); err != nil {
		t.Fatal(err)
	}
	if st, _ := ac.Status(ctx); st.Models[0].Replicas[0].State != StateDraining {
		t.Errorf("after drain: %+v", st.Models[0].Replicas[0])
	}
	if _, err := ac.Undrain(ctx, a.addr); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Drain(ctx, "http://nowhere:1"); oip.StatusCode(err) != 404 {
		t.Errorf("unknown replica: %v", err)
	}

	// Reload picks up the file; a broken file changes nothing.
	writeConfig(t, path, "s3cret", a, b)
	if rr, err := ac.Reload(ctx); err != nil || rr.Replicas != 2 {
		t.Fatalf("reload: %+v %v", rr, err)
	}
	if replicaStatus(g, b.addr).Address != b.addr {
		t.Error("reload did not add b")
	}
	if err := os.WriteFile(path, []byte("models: {iris: {replicas: []}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ac.Reload(ctx)
	var se *oip.StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(se.Message, "line 1") {
		t.Errorf("broken reload: %v", err)
	}
	if replicaStatus(g, b.addr).Address != b.addr {
		t.Error("a failed reload changed the config")
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	a := newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), a))
	if code := getStatus(t, base+"/admin/status"); code != 404 {
		t.Errorf("admin without token: %d", code)
	}
}

func newServer(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := httptestServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMetadataProxiedAndHealth(t *testing.T) {
	bad, good := newFake(t, modeOK), newFake(t, modeOK)
	bad.srv.Close()
	p := testPolicy()
	p.Health.Interval = 1 << 62 // the dead one stays in rotation: retries must cover it
	_, base := startGateway(t, testConfig(p, bad, good))
	for _, path := range []string{"/v2", "/v2/models/iris", "/v2/models/iris/ready", "/v2/health/live", "/v2/health/ready"} {
		for range 5 {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
			}
		}
	}
	if code := getStatus(t, base+"/v2/models/nope"); code != 404 {
		t.Errorf("unknown model metadata: %d", code)
	}
}

func TestMetricsExposed(t *testing.T) {
	a := newFake(t, modeOK)
	_, base := startGateway(t, testConfig(testPolicy(), a))
	infer(t, base, "x")
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{
		`bulwark_gateway_requests_total{code="200",model="iris"} 1`,
		`bulwark_gateway_request_duration_seconds_count{model="iris"} 1`,
		`bulwark_gateway_tries_total{kind="first",model="iris"} 1`,
		`bulwark_gateway_replica_state{model="iris",replica="` + a.addr + `",state="healthy"} 1`,
	} {
		if !strings.Contains(string(b), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}
