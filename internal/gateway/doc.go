// Package gateway is Bulwark's fault-tolerant Open Inference Protocol
// gateway. Clients talk to it exactly as to a node (the same OIP v2 REST
// endpoints and {"error"} bodies); behind it, each model has a set of
// replicas, any OIP servers (Bulwark nodes, Triton, KServe runtimes),
// which the gateway reaches over HTTP only. It never imports node or
// runtime.
//
// A request flows: handlers (shed at the model's pending cap, buffer the
// body once, set the deadline) → call (proxy: tries with retries and
// hedging; or vote: N-modular redundancy) → pool (a version drawn by
// weight, then power-of-two-choices on outstanding tries, zone
// preference) → forward (one HTTP try, answer read in full: the first
// try in the request's own goroutine, firsttry.go; plain-http replicas
// through the gateway's own pooled HTTP/1.1 client, h1.go and h1wire.go,
// https ones through net/http) → replica (breaker, outlier ejection,
// latency EWMA).
//
// Independently, a health checker per replica and model probes
// /v2/health/ready and /v2/models/{m}/ready; budgets (token buckets) keep
// retries and hedges to a share of the traffic; the admin API (bearer
// token) reports status, drains replicas and reloads the config.
//
// Configuration is a YAML file (LoadConfig) or a Config built in code;
// Update swaps it in atomically, keeping the state of replicas that stay.
// A Follower feeds Update from a controller's routing tables (any
// TableSource; the control package's client is one) and keeps the last
// table on disk, so that the gateway keeps serving on it while the
// controller is unreachable.
package gateway
