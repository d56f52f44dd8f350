package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark-ml/bulwark/internal/bearer"
)

// API limits.
const (
	// MaxDocumentBytes bounds an applied document; deployments are small,
	// and the body is parsed in memory.
	MaxDocumentBytes = 1 << 20
	// MaxWatchWait is the longest a watch request is held open, below the
	// idle timeouts of common proxies.
	MaxWatchWait = 30 * time.Second
	// DefaultEventLimit is how many events GET .../events returns by default.
	DefaultEventLimit = 100
)

// StatusView is GET /api/v1/deployments/{name}/status: the status with the
// revision it should converge to.
type StatusView struct {
	Name            string `json:"name"`
	Revision        int64  `json:"revision"` // desired
	ResourceVersion int64  `json:"resourceVersion"`
	Status          Status `json:"status"`
}

// List bodies, as Kubernetes returns them.
type (
	DeploymentList struct {
		Items []*Deployment `json:"items"`
	}
	RevisionList struct {
		Items []RevisionInfo `json:"items"`
	}
	EventList struct {
		Items []Event `json:"items"`
	}
)

// RollbackRequest is the body of POST .../rollback; 0 means the previous
// revision.
type RollbackRequest struct {
	ToRevision int64 `json:"toRevision"`
}

// WatchResponse is the body of GET /api/v1/watch.
type WatchResponse struct {
	Generation int64 `json:"generation"`
}

// NewAPI serves svc over HTTP/JSON (docs/deployments.md) behind the bearer
// token: every route needs it, reads included, since deployments name
// the models a site serves.
func NewAPI(svc *Service, token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{svc: svc, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/apply", a.apply)
	mux.HandleFunc("GET /api/v1/deployments", a.list)
	mux.HandleFunc("GET /api/v1/deployments/{name}", a.get)
	mux.HandleFunc("DELETE /api/v1/deployments/{name}", a.delete)
	mux.HandleFunc("GET /api/v1/deployments/{name}/revisions", a.revisions)
	mux.HandleFunc("POST /api/v1/deployments/{name}/rollback", a.rollback)
	mux.HandleFunc("GET /api/v1/deployments/{name}/events", a.events)
	mux.HandleFunc("GET /api/v1/deployments/{name}/status", a.status)
	mux.HandleFunc("GET /api/v1/watch", a.watch)
	a.mountReconcilerAPI(mux) // routing_api.go
	a.mountBackupAPI(mux)     // backup_api.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API: "+r.Method+" "+r.URL.Path)
	})
	return bearer.Require(token, mux)
}

type api struct {
	svc *Service
	log *slog.Logger
}

func (a *api) apply(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json":
		// JSON is YAML, so one parser (with its line numbers) reads both.
	default:
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/yaml or application/json", mt))
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDocumentBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("document over %d bytes", MaxDocumentBytes))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	d, err := Parse(b)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	apply := a.svc.Apply
	if dry := r.URL.Query().Get("dryRun"); dry == "1" || dry == "true" || dry == "All" {
		apply = a.svc.DryRun
	}
	res, err := apply(r.Context(), d, d.Metadata.ResourceVersion)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	code := http.StatusOK
	if res.Result == Created && !res.DryRun {
		code = http.StatusCreated
	}
	writeJSON(w, code, res)
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	ds, err := a.svc.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, DeploymentList{Items: ds})
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	d, err := a.svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	expect, ok := a.intParam(w, r, "resourceVersion")
	if !ok {
		return
	}
	name := r.PathValue("name")
	if err := a.svc.Delete(r.Context(), name, expect); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "deleted", "name": name})
}

func (a *api) revisions(w http.ResponseWriter, r *http.Request) {
	revs, err := a.svc.Revisions(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RevisionList{Items: revs})
}

func (a *api) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "rollback body: "+err.Error()+` (want {"toRevision": N})`)
		return
	}
	if req.ToRevision < 0 {
		writeError(w, http.StatusBadRequest, "toRevision must not be negative")
		return
	}
	res, err := a.svc.Rollback(r.Context(), r.PathValue("name"), req.ToRevision)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
	limit, ok := a.intParam(w, r, "limit")
	if !ok {
		return
	}
	if limit == 0 {
		limit = DefaultEventLimit
	}
	evs, err := a.svc.Events(r.Context(), r.PathValue("name"), int(limit))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if evs == nil {
		evs = []Event{}
	}
	writeJSON(w, http.StatusOK, EventList{Items: evs})
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	d, err := a.svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, StatusView{Name: d.Metadata.Name, Revision: d.Metadata.Revision,
		ResourceVersion: d.Metadata.ResourceVersion, Status: *d.Status})
}

// longPoll reads a long-poll's parameters: since (the generation the
// client has) and timeout (how long to wait, at most MaxWatchWait), and
// returns a context that ends when the wait does. On a bad parameter it
// has answered 400 and ok is false.
func (a *api) longPoll(w http.ResponseWriter, r *http.Request) (since int64, ctx context.Context, cancel context.CancelFunc, ok bool) {
	since, ok = a.intParam(w, r, "since")
	if !ok {
		return 0, nil, nil, false
	}
	wait := MaxWatchWait
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: want a duration such as 10s", s))
			return 0, nil, nil, false
		}
		wait = min(d, MaxWatchWait)
	}
	ctx, cancel = context.WithTimeout(r.Context(), wait)
	return since, ctx, cancel, true
}

// watch is the long-poll: it answers when the generation differs from
// since, or after the wait (at most MaxWatchWait) with it unchanged.
func (a *api) watch(w http.ResponseWriter, r *http.Request) {
	since, ctx, cancel, ok := a.longPoll(w, r)
	if !ok {
		return
	}
	defer cancel()
	gen, err := a.svc.Changes(ctx, since)
	if err != nil && r.Context().Err() != nil {
		return // the client went away
	}
	writeJSON(w, http.StatusOK, WatchResponse{Generation: gen})
}

// intParam reads an optional non-negative integer query parameter (0 when
// absent), answering 400 itself when it is malformed.
func (a *api) intParam(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q: want a non-negative integer", name, s))
		return 0, false
	}
	return v, true
}

// fail maps an error to its status, in this one place.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case r.Context().Err() != nil:
		return // the client went away; nobody reads the answer
	default:
		a.log.Error("controller API", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err.Error())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
