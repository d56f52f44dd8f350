package control

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bulwark-ml/bulwark/internal/gateway"
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

// A controller's client is where a gateway takes its routing tables from.
var _ gateway.TableSource = (*Client)(nil)

// NextTable is Routing for a gateway's Follower: the table once its
// generation differs from since, or after the controller's longest wait
// (MaxWatchWait) the current one.
func (c *Client) NextTable(ctx context.Context, since int64) (*gateway.Table, error) {
	resp, err := c.Routing(ctx, since, 0)
	if err != nil {
		return nil, err
	}
	return &gateway.Table{Generation: resp.Generation, Models: resp.Config}, nil
}

// Replicas lists the replicas the controller's reconciler runs.
func (c *Client) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	var out ReplicaList
	err := c.do(ctx, http.MethodGet, "/api/v1/replicas", "", nil, &out)
	return out.Items, err
}
