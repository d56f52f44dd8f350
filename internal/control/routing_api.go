package control

import (
	"errors"
	"net/http"
)

// mountReconcilerAPI adds what the reconciler publishes to the API:
//
//	GET /api/v1/routing?since=N[&timeout=D]  RoutingResponse, long-polled as /api/v1/watch;
//	                                         503 until the reconciler's first table
//	GET /api/v1/replicas                     ReplicaList
func (a *api) mountReconcilerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/routing", a.routingTable)
	mux.HandleFunc("GET /api/v1/replicas", a.replicas)
}

// routingTable answers as soon as the routing generation differs from
// since, or after the wait (at most MaxWatchWait) with the table as it is.
func (a *api) routingTable(w http.ResponseWriter, r *http.Request) {
	since, ctx, cancel, ok := a.longPoll(w, r)
	if !ok {
		return
	}
	defer cancel()
	resp, err := a.svc.Routing().Wait(ctx, since)
	switch {
	case err != nil && r.Context().Err() != nil:
		return // the client went away
	case errors.Is(err, ErrRoutingNotBuilt):
		// Not an empty table: a gateway must keep the one it has.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *api) replicas(w http.ResponseWriter, r *http.Request) {
	items := a.svc.Routing().Replicas()
	if items == nil {
		items = []ReplicaInfo{}
	}
	writeJSON(w, http.StatusOK, ReplicaList{Items: items})
}
