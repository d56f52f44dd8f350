package oip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// StatusError is a non-2xx answer from a server: the HTTP status and the
// message of its {"error"} body (or the start of the body if it had none).
type StatusError struct {
	StatusCode int
	Message    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
}

// StatusCode returns the HTTP status carried by err, or 0 if it has none
// (a transport failure, for instance).
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// Client talks to one OIP REST server. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	// MaxResponseBytes bounds a response body read into memory.
	MaxResponseBytes int64
}

// NewClient returns a client for the server at baseURL (scheme, host and
// optional path prefix, e.g. "http://10.0.0.5:8080"). A nil hc uses
// http.DefaultClient.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc, MaxResponseBytes: 256 << 20}
}

func modelPath(model, version string) string {
	p := "/v2/models/" + url.PathEscape(model)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	return p
}

// Live returns nil if the server answers GET /v2/health/live with 200.
func (c *Client) Live(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v2/health/live", nil, nil)
}

// Ready returns nil if the server is ready to serve.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v2/health/ready", nil, nil)
}

// ModelReady returns nil if the model version (the latest if version is
// empty) is ready; a *StatusError with the server's reason otherwise.
func (c *Client) ModelReady(ctx context.Context, model, version string) error {
	return c.do(ctx, http.MethodGet, modelPath(model, version)+"/ready", nil, nil)
}

// ServerMetadata fetches GET /v2.
func (c *Client) ServerMetadata(ctx context.Context) (*ServerMetadata, error) {
	var m ServerMetadata
	if err := c.do(ctx, http.MethodGet, "/v2", nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ModelMetadata fetches a model version's metadata (the latest version's if
// version is empty).
func (c *Client) ModelMetadata(ctx context.Context, model, version string) (*ModelMetadata, error) {
	var m ModelMetadata
	if err := c.do(ctx, http.MethodGet, modelPath(model, version), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Infer runs an inference. Decode the outputs with InferResponse.Tensors.
func (c *Client) Infer(ctx context.Context, model, version string, req *InferRequest) (*InferResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	var resp InferResponse
	if err := c.do(ctx, http.MethodPost, modelPath(model, version)+"/infer", body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// do sends a request and decodes a 200 body into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		// Drain a little so the connection can be reused.
		io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if int64(len(b)) > c.MaxResponseBytes {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, path, c.MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{StatusCode: resp.StatusCode, Message: errorMessage(resp.StatusCode, b)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

func errorMessage(status int, body []byte) string {
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		return s
	}
	return http.StatusText(status)
}
