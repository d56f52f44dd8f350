package control

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Routing long-polls the routing table: it returns once the routing
// generation differs from since (0 at first, which answers at once), or
// after wait (at most MaxWatchWait; 0 for that) with the table unchanged.
// A gateway keeps the generation it applied and asks again; while the
// controller cannot be reached it keeps routing on what it has.
func (c *Client) Routing(ctx context.Context, since int64, wait time.Duration) (*RoutingResponse, error) {
	path := "/api/v1/routing?since=" + strconv.FormatInt(since, 10)
	if wait > 0 {
		path += "&timeout=" + url.QueryEscape(wait.String())
	}
	var out RoutingResponse
	if err := c.do(ctx, http.MethodGet, path, "", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Replicas lists the replicas the controller's reconciler runs.
func (c *Client) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	var out ReplicaList
	err := c.do(ctx, http.MethodGet, "/api/v1/replicas", "", nil, &out)
	return out.Items, err
}
