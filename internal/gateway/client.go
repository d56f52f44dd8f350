package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bulwark-ml/bulwark/internal/oip"
)

// AdminClient talks to a gateway's admin API, for `bulwark status` and
// friends. Errors from the gateway are *oip.StatusError (401 for a wrong
// token, 404 for an unknown replica or a disabled admin API).
type AdminClient struct {
	base  string
	token string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// NewAdminClient returns a client for the gateway at baseURL (e.g.
// "http://127.0.0.1:8000") using the bearer token.
func NewAdminClient(baseURL, token string) *AdminClient {
	return &AdminClient{base: strings.TrimRight(baseURL, "/"), token: token}
}

// Status fetches GET /admin/status.
func (c *AdminClient) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/admin/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Drain stops new traffic to the replica at addr in every model.
func (c *AdminClient) Drain(ctx context.Context, addr string) (*DrainResponse, error) {
	var out DrainResponse
	if err := c.do(ctx, http.MethodPost, "/admin/replicas/drain", DrainRequest{Address: addr}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Undrain returns the replica at addr to rotation.
func (c *AdminClient) Undrain(ctx context.Context, addr string) (*DrainResponse, error) {
	var out DrainResponse
	if err := c.do(ctx, http.MethodPost, "/admin/replicas/undrain", DrainRequest{Address: addr}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Reload makes the gateway re-read its config file.
func (c *AdminClient) Reload(ctx context.Context) (*ReloadResponse, error) {
	var out ReloadResponse
	if err := c.do(ctx, http.MethodPost, "/admin/reload", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := errorMessage(b)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &oip.StatusError{StatusCode: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
