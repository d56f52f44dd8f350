package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bulwark-ml/bulwark/internal/oip"
	"github.com/bulwark-ml/bulwark/internal/runtime"
	"github.com/bulwark-ml/bulwark/internal/tensor"
)

// statusClientClosed is nginx's code for a request whose client went away;
// nobody reads it, but it keeps such requests apart in the metrics.
const statusClientClosed = 499

// Buffers are pooled for request and response bodies, the two allocations
// that grow with traffic. Big ones are dropped so that one huge request
// does not pin its memory.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuf = 1 << 20

func getBuf() *bytes.Buffer { return bufPool.Get().(*bytes.Buffer) }

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		b.Reset()
		bufPool.Put(b)
	}
}

// inferError is a failed inference: the status, the message for the
// client and the kind for the errors metric.
type inferError struct {
	status int
	kind   string
	msg    string
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, version := r.PathValue("model"), r.PathValue("version")
	mv, err := s.models.resolve(name, version)
	if err != nil {
		status := lookupStatus(err)
		writeError(w, status, err.Error())
		kind := errKindNotFound
		if status == http.StatusServiceUnavailable {
			kind = errKindNotReady
		}
		// Unknown names share one series: clients must not mint new ones.
		s.metrics.forVersion(unknownLabel, unknownLabel).observe(status, kind, start)
		return
	}
	body, ierr := s.infer(w, r, mv)
	if ierr != nil {
		if ierr.status >= 500 && ierr.status != http.StatusServiceUnavailable && ierr.kind != errKindChaos {
			s.log.Warn("inference failed", "model", mv.name, "version", mv.version, "status", ierr.status, "err", ierr.msg)
		} else {
			s.log.Debug("inference rejected", "model", mv.name, "version", mv.version, "status", ierr.status, "err", ierr.msg)
		}
		writeError(w, ierr.status, ierr.msg)
		mv.obs.observe(ierr.status, ierr.kind, start)
		return
	}
	writeBody(w, http.StatusOK, body.Bytes())
	putBuf(body)
	mv.obs.observe(http.StatusOK, "", start)
	s.log.Debug("inference", "model", mv.name, "version", mv.version, "duration", time.Since(start))
}

// infer runs one request against a resolved version and returns the
// encoded response in a pooled buffer.
func (s *Server) infer(w http.ResponseWriter, r *http.Request, mv *modelVersion) (*bytes.Buffer, *inferError) {
	if !mv.ready() {
		return nil, &inferError{http.StatusServiceUnavailable, errKindNotReady, notReadyMsg(mv)}
	}
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	buf := getBuf()
	defer putBuf(buf)
	if r.ContentLength > 0 {
		// Trust a claimed length only up to a point, so a client cannot make
		// the node reserve MaxBodyBytes per connection without sending it.
		buf.Grow(int(min(r.ContentLength, maxPooledBuf)) + 1) // +1: ReadFrom's EOF probe
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, &inferError{http.StatusBadRequest, errKindBadRequest, "read request body: " + err.Error()}
	}
	// Chaos mode acts once the body is read: from then on the server
	// notices a client that goes away, and a hang or delay ends with it.
	var corrupt func([]oip.Output)
	if s.chaos != nil {
		var ierr *inferError
		if corrupt, ierr = s.chaos.intercept(r, mv); ierr != nil {
			return nil, ierr
		}
	}
	req, err := oip.DecodeInferRequest(buf.Bytes())
	if err != nil {
		return nil, &inferError{http.StatusBadRequest, errKindBadRequest, err.Error()}
	}
	if err := runtime.CheckInputs(mv.sig, req.Inputs); err != nil {
		return nil, &inferError{http.StatusBadRequest, errKindBadRequest, err.Error()}
	}
	if err := runtime.CheckOutputs(mv.sig, req.Outputs); err != nil {
		return nil, &inferError{http.StatusBadRequest, errKindBadRequest, err.Error()}
	}
	outs, err := safeInfer(r.Context(), mv.model, req.Inputs, req.Outputs)
	if err != nil {
		return nil, runtimeError(r.Context(), err)
	}
	outputs, msg := collectOutputs(outputNames(mv.sig, req.Outputs), outs)
	if msg != "" {
		return nil, &inferError{http.StatusInternalServerError, errKindRuntime, msg}
	}
	if corrupt != nil {
		corrupt(outputs)
	}
	resp := &oip.Response{ModelName: mv.name, ModelVersion: mv.version, ID: req.ID, Outputs: outputs}
	out := getBuf()
	b, err := oip.AppendInferResponse(out.AvailableBuffer(), resp)
	if err != nil {
		putBuf(out)
		return nil, &inferError{http.StatusInternalServerError, errKindRuntime, "encode response: " + err.Error()}
	}
	out.Write(b) // b shares out's storage when it fit; Write then just extends
	return out, nil
}

func tooLarge(limit int64) *inferError {
	return &inferError{http.StatusRequestEntityTooLarge, errKindTooLarge,
		fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
}

// runtimeError maps an Infer error: the caller's fault (ErrInvalidInput)
// is 400, a client that went away or a deadline is not the model's fault,
// anything else is 500.
func runtimeError(ctx context.Context, err error) *inferError {
	switch {
	case errors.Is(err, runtime.ErrInvalidInput):
		return &inferError{http.StatusBadRequest, errKindBadRequest, err.Error()}
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return &inferError{statusClientClosed, errKindCanceled, "request cancelled: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &inferError{http.StatusGatewayTimeout, errKindCanceled, "inference timed out: " + err.Error()}
	}
	return &inferError{http.StatusInternalServerError, errKindRuntime, "inference failed: " + err.Error()}
}

// safeInfer turns a runtime panic into a 500 for this request alone.
func safeInfer(ctx context.Context, m runtime.Model, in map[string]*tensor.Tensor, outputs []string) (out map[string]*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("runtime panicked: %v", r)
		}
	}()
	return m.Infer(ctx, in, outputs)
}
