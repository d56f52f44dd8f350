package node

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/bulwark-ml/bulwark/internal/modelstore"
	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// routes builds the mux. Every path is registered twice: with its method,
// and without one to answer other methods with a JSON 405 rather than the
// mux's plain-text default.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+", use "+method)
		})
	}
	route("GET", "/v2/health/live", s.handleLive)
	route("GET", "/v2/health/ready", s.handleReady)
	route("GET", "/v2", s.handleServerMetadata)
	route("GET", "/v2/models/{model}", s.handleModelMetadata)
	route("GET", "/v2/models/{model}/versions/{version}", s.handleModelMetadata)
	route("GET", "/v2/models/{model}/ready", s.handleModelReady)
	route("GET", "/v2/models/{model}/versions/{version}/ready", s.handleModelReady)
	route("POST", "/v2/models/{model}/infer", s.handleInfer)
	route("POST", "/v2/models/{model}/versions/{version}/infer", s.handleInfer)
	route("GET", "/metrics", s.metrics.handler().ServeHTTP)
	if s.chaos != nil {
		s.chaos.mount(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	writeBody(w, status, b)
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	w.Write(b)
}

// writeError answers with the protocol's {"error": msg} body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeBody(w, status, oip.AppendError(nil, msg))
}

// lookupStatus maps a manager lookup error to an HTTP status.
func lookupStatus(err error) int {
	if le, ok := err.(*lookupError); ok && le.loading {
		return http.StatusServiceUnavailable
	}
	return http.StatusNotFound
}

func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	loaded, ready := s.models.anyReady()
	switch {
	case !loaded:
		writeError(w, http.StatusServiceUnavailable, "models are still loading")
	case !ready:
		writeError(w, http.StatusServiceUnavailable, "no model version is ready")
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	}
}

func (s *Server) handleServerMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, oip.ServerMetadata{Name: s.cfg.NodeName, Version: s.cfg.Version, Extensions: []string{}})
}

// handleModelMetadata describes a version. A version that failed to load
// is still described (200), from its manifest, with the reason: the client
// asked what the model is, and "not ready, because ..." is part of that.
func (s *Server) handleModelMetadata(w http.ResponseWriter, r *http.Request) {
	mv, err := s.models.resolve(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		writeError(w, lookupStatus(err), err.Error())
		return
	}
	md := oip.ModelMetadata{
		Name:       mv.name,
		Versions:   s.models.versions(mv.name),
		Platform:   "onnx",
		Parameters: oip.Parameters{"version": mv.version, "ready": mv.ready()},
	}
	if mv.manifest != nil && mv.manifest.Format != "" {
		md.Platform = mv.manifest.Format
	}
	if mv.ready() {
		md.Inputs, md.Outputs = specsMeta(mv.sig.Inputs), specsMeta(mv.sig.Outputs)
	} else {
		md.Parameters["reason"] = mv.reason
		if mv.manifest != nil {
			md.Inputs, md.Outputs = ioMeta(mv.manifest.Inputs), ioMeta(mv.manifest.Outputs)
		}
	}
	if md.Inputs == nil {
		md.Inputs = []oip.TensorMetadata{}
	}
	if md.Outputs == nil {
		md.Outputs = []oip.TensorMetadata{}
	}
	writeJSON(w, http.StatusOK, md)
}

func specsMeta(specs []runtime.TensorSpec) []oip.TensorMetadata {
	out := make([]oip.TensorMetadata, len(specs))
	for i, sp := range specs {
		out[i] = oip.TensorMetadata{Name: sp.Name, Datatype: sp.DType.String(), Shape: shape64(sp.Shape)}
	}
	return out
}

func ioMeta(specs []modelstore.IOSpec) []oip.TensorMetadata {
	out := make([]oip.TensorMetadata, len(specs))
	for i, sp := range specs {
		out[i] = oip.TensorMetadata{Name: sp.Name, Datatype: sp.Datatype, Shape: shape64(sp.Shape)}
	}
	return out
}

// shape64 converts a shape; nil (rank unknown) stays nil and is sent as
// null, which no concrete shape can be confused with.
func shape64(shape []int) []int64 {
	if shape == nil {
		return nil
	}
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[i] = int64(d)
	}
	return out
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	mv, err := s.models.resolve(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		writeError(w, lookupStatus(err), err.Error())
		return
	}
	if !mv.ready() {
		writeError(w, http.StatusServiceUnavailable, notReadyMsg(mv))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": mv.name, "version": mv.version, "ready": true})
}

func notReadyMsg(mv *modelVersion) string {
	return "model " + mv.name + ":" + mv.version + " is not ready: " + mv.reason
}

// outputNames is the list of outputs to return: the requested ones in the
// request's order, or all of the signature's in declaration order.
func outputNames(sig runtime.Signature, requested []string) []string {
	if len(requested) > 0 {
		return requested
	}
	names := make([]string, len(sig.Outputs))
	for i, o := range sig.Outputs {
		names[i] = o.Name
	}
	return names
}

// collectOutputs pairs names with the runtime's tensors; a missing one is
// the runtime's fault.
func collectOutputs(names []string, got map[string]*tensor.Tensor) ([]oip.Output, string) {
	outs := make([]oip.Output, len(names))
	for i, n := range names {
		t := got[n]
		if t == nil {
			return nil, "runtime returned no tensor for output " + n
		}
		outs[i] = oip.Output{Name: n, Tensor: t}
	}
	return outs, ""
}
