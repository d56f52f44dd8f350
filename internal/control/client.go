package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a controller's API; the CLI uses it. Errors from the
// controller are *APIError, matching ErrInvalid, ErrNotFound, ErrConflict
// or ErrUnauthorized with errors.Is by their status. Safe for concurrent
// use.
type Client struct {
	base  string
	token string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// NewClient returns a client for the controller at baseURL (e.g.
// "http://127.0.0.1:8100") using the bearer token.
func NewClient(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token}
}

// APIError is a non-2xx answer: the status and the {"error"} message,
// which for a document names the line and the field.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// Is maps the status to the package's errors, so callers handle a remote
// controller as they would a local Service.
func (e *APIError) Is(target error) bool {
	switch e.StatusCode {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
		return target == ErrInvalid
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusConflict:
		return target == ErrConflict
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	}
	return false
}

// Apply sends one document (YAML or JSON, by contentType).
func (c *Client) Apply(ctx context.Context, doc []byte, contentType string, dryRun bool) (*ApplyResult, error) {
	path := "/api/v1/apply"
	if dryRun {
		path += "?dryRun=1"
	}
	var res ApplyResult
	if err := c.do(ctx, http.MethodPost, path, contentType, doc, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// ApplyFile applies the documents of a YAML file in order and stops at the
// first error, returning what was applied before it; the error says which
// document failed (line numbers in it are the file's).
func (c *Client) ApplyFile(ctx context.Context, file []byte, dryRun bool) ([]*ApplyResult, error) {
	docs := SplitDocuments(file)
	if len(docs) == 0 {
		return nil, &APIError{StatusCode: http.StatusBadRequest, Message: "no document in the file"}
	}
	var done []*ApplyResult
	for i, d := range docs {
		res, err := c.Apply(ctx, d.Body, "application/yaml", dryRun)
		if err != nil {
			if len(docs) == 1 {
				return nil, err
			}
			return done, fmt.Errorf("document %d of %d (line %d): %w", i+1, len(docs), d.Line, err)
		}
		done = append(done, res)
	}
	return done, nil
}

// List returns every deployment.
func (c *Client) List(ctx context.Context) ([]*Deployment, error) {
	var out DeploymentList
	err := c.do(ctx, http.MethodGet, "/api/v1/deployments", "", nil, &out)
	return out.Items, err
}

// Get returns one deployment with its status.
func (c *Client) Get(ctx context.Context, name string) (*Deployment, error) {
	var d Deployment
	if err := c.do(ctx, http.MethodGet, deploymentPath(name), "", nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Delete removes a deployment; expect 0 does not pin its resource version.
func (c *Client) Delete(ctx context.Context, name string, expect int64) error {
	path := deploymentPath(name)
	if expect != 0 {
		path += "?resourceVersion=" + strconv.FormatInt(expect, 10)
	}
	return c.do(ctx, http.MethodDelete, path, "", nil, &struct{}{})
}

// Revisions lists the kept revisions, oldest first.
func (c *Client) Revisions(ctx context.Context, name string) ([]RevisionInfo, error) {
	var out RevisionList
	err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/revisions", "", nil, &out)
	return out.Items, err
}

// Rollback goes back to revision to (0: the previous one) as a new revision.
func (c *Client) Rollback(ctx context.Context, name string, to int64) (*ApplyResult, error) {
	body, _ := json.Marshal(RollbackRequest{ToRevision: to})
	var res ApplyResult
	if err := c.do(ctx, http.MethodPost, deploymentPath(name)+"/rollback", "application/json", body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Events returns the most recent events, oldest first (limit 0: the
// controller's default).
func (c *Client) Events(ctx context.Context, name string, limit int) ([]Event, error) {
	path := deploymentPath(name) + "/events"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var out EventList
	err := c.do(ctx, http.MethodGet, path, "", nil, &out)
	return out.Items, err
}

// Status returns the status with the revision it should reach.
func (c *Client) Status(ctx context.Context, name string) (*StatusView, error) {
	var out StatusView
	if err := c.do(ctx, http.MethodGet, deploymentPath(name)+"/status", "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Watch waits, up to wait (at most MaxWatchWait; 0 for that), for the
// desired-state generation to differ from since and returns the current
// one: since itself when nothing changed in time.
func (c *Client) Watch(ctx context.Context, since int64, wait time.Duration) (int64, error) {
	path := "/api/v1/watch?since=" + strconv.FormatInt(since, 10)
	if wait > 0 {
		path += "&timeout=" + url.QueryEscape(wait.String())
	}
	var out WatchResponse
	err := c.do(ctx, http.MethodGet, path, "", nil, &out)
	return out.Generation, err
}

func deploymentPath(name string) string { return "/api/v1/deployments/" + url.PathEscape(name) }

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
