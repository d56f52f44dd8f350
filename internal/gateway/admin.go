package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bulwark-ml/bulwark/internal/bearer"
)

// DrainRequest is the body of POST /admin/replicas/drain and .../undrain.
type DrainRequest struct {
	Address string `json:"address"`
}

// DrainResponse says which models the replica was (un)drained in.
type DrainResponse struct {
	Address  string   `json:"address"`
	Draining bool     `json:"draining"`
	Models   []string `json:"models"`
}

// ReloadResponse is the answer of POST /admin/reload.
type ReloadResponse struct {
	Models   int `json:"models"`
	Replicas int `json:"replicas"`
}

// adminHandler serves /admin/*, behind the bearer token of the config in
// force (read per request, so a reload can change it). Without a token
// the admin API is disabled; a missing or wrong token is 401 and changes
// nothing.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.Status())
	})
	mux.HandleFunc("POST /admin/replicas/drain", func(w http.ResponseWriter, r *http.Request) { g.handleDrain(w, r, true) })
	mux.HandleFunc("POST /admin/replicas/undrain", func(w http.ResponseWriter, r *http.Request) { g.handleDrain(w, r, false) })
	mux.HandleFunc("POST /admin/reload", g.handleReload)
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin endpoint: "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer.Require(g.table().cfg.Admin.Token, mux).ServeHTTP(w, r)
	})
}

func (g *Gateway) handleDrain(w http.ResponseWriter, r *http.Request, on bool) {
	var req DrainRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Address == "" {
		writeError(w, http.StatusBadRequest, `body must be {"address": "<replica base URL>"}`)
		return
	}
	models, err := g.setDrain(req.Address, on)
	if errors.Is(err, ErrUnknownReplica) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, DrainResponse{Address: normalizeAddress(req.Address), Draining: on, Models: models})
}

func (g *Gateway) handleReload(w http.ResponseWriter, r *http.Request) {
	load := g.opts.Reload
	if load == nil && g.opts.ConfigPath != "" {
		load = func() (*Config, error) { return LoadConfig(g.opts.ConfigPath) }
	}
	if load == nil {
		writeError(w, http.StatusConflict, "the gateway was started without a config file: nothing to reload")
		return
	}
	cfg, err := load()
	if err == nil {
		err = g.Update(cfg)
	}
	if err != nil {
		g.log.Warn("reload failed, keeping the current config", "err", err)
		writeError(w, http.StatusBadRequest, "reload failed, the current config stays: "+err.Error())
		return
	}
	n := 0
	for _, m := range cfg.Models {
		n += len(m.Replicas)
	}
	writeJSON(w, http.StatusOK, ReloadResponse{Models: len(cfg.Models), Replicas: n})
}
